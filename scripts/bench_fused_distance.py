"""Seconds per pretrain step with the gathered-distance scoring of negatives ("after") and without ("before").

"before" scores the sampled candidates as the model did before `Interaction.compare_gathered` existed: the
(B, k, w) candidates are gathered and compared (the base class's implementation, the same values and
gradients bit for bit). "after" is the model as it is. Both run the real `train_step` (sampling, loss,
backward, Adam) on a random graph of MKG-Y's size, interleaved so that a CPU shared with other work slows
both alike; the medians and their ratio are printed. `--memory` also reports, per form, the bytes autograd
keeps between forward and backward and the peak resident memory of a fresh process running the steps.

    .venv/bin/python scripts/bench_fused_distance.py --models transe rotate --views structural text
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass

import torch

from dhns.config import load_params
from dhns.host import seed_everything
from dhns.models.interactions import Interaction
from dhns.models.kgc import KGCModel
from dhns.pipeline.paths import PARAMS_FILE
from dhns.training.kgc import train_step
from dhns.training.objective import build_objective

FORMS = ("before", "after")


@dataclass(frozen=True)
class Case:
    model: str
    view: str  # structural: no features; text: one feature view fused with the structural embedding
    entities: int
    relations: int
    batch: int
    negatives: int
    dim: int
    text_dim: int
    precision: str
    gather_chunk: int = 0  # elements per chunk of the fused form; 0 = the interaction's default


class StepRunner:
    """One model, sampler and optimiser whose `step(form)` times one `train_step` in either form."""

    def __init__(self, case: Case, seed: int = 0) -> None:
        seed_everything(seed)  # as the stages do (deterministic kernels included)
        generator = torch.Generator().manual_seed(seed)
        triples = torch.stack([
            torch.randint(case.entities, (20_000,), generator=generator),
            torch.randint(case.relations, (20_000,), generator=generator),
            torch.randint(case.entities, (20_000,), generator=generator),
        ], dim=1)
        features = None
        if case.view == "text":
            present = torch.rand(case.entities, generator=generator) < 0.9
            features = {"text": (torch.randn(case.entities, case.text_dim, generator=generator), present)}
        params = load_params(PARAMS_FILE, overrides={
            "model.name": case.model, "model.embedding_dim": case.dim, "model.use_features": features is not None,
            "pretrain.num_negatives": case.negatives, "pretrain.precision": case.precision})
        self.model = KGCModel(params.model, case.entities, case.relations, features)
        if case.gather_chunk:
            self.model.interaction.gather_chunk = case.gather_chunk
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.objective = build_objective(params.pretrain, triples, case.entities, case.relations)
        self.positives = triples[: case.batch]
        self.generator = generator
        self.fused_compare = self.model.interaction.compare_gathered
        self.plain_compare = types.MethodType(Interaction.compare_gathered, self.model.interaction)

    def use(self, form: str) -> None:
        self.model.interaction.compare_gathered = self.fused_compare if form == "after" else self.plain_compare

    def step(self, form: str) -> float:
        self.use(form)
        started = time.perf_counter()
        train_step(self.model, self.optimizer, self.objective, self.positives, self.generator)
        return time.perf_counter() - started

    def saved_bytes(self, form: str) -> int:
        """Bytes of the distinct tensors autograd saves for backward in one step's forward pass."""
        self.use(form)
        storages: dict[int, int] = {}

        def keep(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            train_step(self.model, self.optimizer, self.objective, self.positives, self.generator)
        return sum(storages.values())


def time_case(case: Case, repeats: int, warmup: int) -> dict:
    runner = StepRunner(case)
    for _ in range(warmup):
        for form in FORMS:
            runner.step(form)
    seconds: dict[str, list[float]] = {form: [] for form in FORMS}
    for repeat in range(repeats):
        for form in FORMS if repeat % 2 == 0 else FORMS[::-1]:  # alternate which form runs first
            seconds[form].append(runner.step(form))
    medians = {form: statistics.median(values) for form, values in seconds.items()}
    return {"seconds": seconds, "median": medians, "speedup": medians["before"] / medians["after"]}


def peak_rss_mib(case: Case, form: str, steps: int) -> float:
    """Peak resident memory of a fresh process that builds the case and runs `steps` steps in `form` (Linux)."""
    command = [sys.executable, __file__, "--rss-child", form, "--steps", str(steps), "--case", json.dumps(vars(case))]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


def rss_child(case: Case, form: str, steps: int) -> None:
    runner = StepRunner(case)
    for _ in range(steps):
        runner.step(form)
    # VmHWM, not getrusage's ru_maxrss: that one is inherited from the parent across fork and exec
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(peak_kib / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["transe", "rotate"])
    parser.add_argument("--views", nargs="+", default=["structural", "text"], choices=["structural", "text"])
    parser.add_argument("--entities", type=int, default=15_000)
    parser.add_argument("--relations", type=int, default=28)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--negatives", type=int, default=64)
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--gather-chunk", type=int, default=0, help="elements per fused chunk; 0 = default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="also saved-tensor bytes and peak RSS per form")
    parser.add_argument("--steps", type=int, default=3, help="steps of each peak-RSS process")
    parser.add_argument("--rss-child", choices=FORMS, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(Case(**json.loads(args.case)), args.rss_child, args.steps)
        return
    chunk = args.gather_chunk or "default"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.precision}, gather chunk {chunk}")
    for model in args.models:
        for view in args.views:
            case = Case(model, view, args.entities, args.relations, args.batch, args.negatives, args.dim,
                        args.text_dim, args.precision, args.gather_chunk)
            result = time_case(case, args.repeats, args.warmup)
            before, after = result["median"]["before"], result["median"]["after"]
            line = (f"{model:7s} {view:10s} before {before:.3f} s/step  after {after:.3f} s/step  "
                    f"speedup {result['speedup']:.2f}x  (medians of {args.repeats})")
            if args.memory:
                runner = StepRunner(case)
                saved = {form: runner.saved_bytes(form) / 2**20 for form in FORMS}
                rss = {form: peak_rss_mib(case, form, args.steps) for form in FORMS}
                line += (f"  saved for backward {saved['before']:.0f} -> {saved['after']:.0f} MiB"
                         f"  peak RSS {rss['before']:.0f} -> {rss['after']:.0f} MiB")
            print(line, flush=True)


if __name__ == "__main__":
    main()
