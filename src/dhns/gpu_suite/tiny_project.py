"""A throwaway project for the stage scripts: the star graph and tiny sizes of tests/test_pipeline.py.

Why not the repository itself: the stages write data/, models/ and metrics/ beside params.yaml, and the
suite must leave the checkout as it found it; no git or DVC either, since the device machine has no DVC.
"""

from __future__ import annotations

from pathlib import Path

from dhns.gpu_suite.commands import Outcome, PartRun, python
from dhns.gpu_suite.settings import REPO, Settings

# Long enough to be killed mid-run (as in tests/test_resume.py): about 15 ms an epoch on a CPU; a GPU may be faster.
PRETRAIN_EPOCHS = {"tiny": 80, "gpu": 200}


def pretrain_epochs(settings: Settings) -> int:
    return PRETRAIN_EPOCHS["tiny" if settings.tiny else "gpu"]


def write_tiny_benchmark(folder: Path, num_sources: int = 12, num_relations: int = 2) -> None:
    """The star graph the suite and tests/test_pipeline.py run, in OpenKE format (first line a count; `head tail relation`)."""
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


def new_project(run: PartRun, root: Path) -> None:
    """A project folder as tests/test_pipeline.py lays it out, minus git and DVC: raw TINY data and params."""
    encoder = run.settings.work / "tiny-bert"
    if not (encoder / "config.json").is_file():  # made once, shared by parts 3 and 4
        run.run("tiny-bert", python(run.settings, "-m", "dhns.gpu_suite.tiny_bert", encoder))
    write_tiny_benchmark(root / "data" / "raw" / "TINY")
    write_params(root, run.settings.device, encoder, pretrain_epochs(run.settings))


def run_stage(run: PartRun, root: Path, stage: str, name: str | None = None) -> Outcome:
    """A stage script as `dvc repro` would run it, from the project's root, without DVC."""
    return run.run(name or stage, python(run.settings, REPO / "stages" / f"{stage}.py"), cwd=root)
