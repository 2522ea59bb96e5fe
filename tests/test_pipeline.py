"""The DVC pipeline end to end on a tiny graph: stages wire up, reruns are minimal, bad input keeps outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dhns.gpu_suite.tiny_project import write_tiny_benchmark  # the same star graph the GPU suite runs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, tiny_bert_dir: Path) -> Path:
    """A fresh git + DVC project holding this repository's pipeline and a tiny dataset."""
    root = tmp_path / "project"
    root.mkdir()
    for item in ("dvc.yaml", "stages", "src"):
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / item)
    write_tiny_benchmark(root / "data" / "raw" / "TINY")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["dataset"] = "TINY"
    params["device"] = "cpu"
    params["features"]["text_encoder"] = str(tiny_bert_dir)
    params["model"].update(embedding_dim=8)
    params["pretrain"].update(num_epochs=4, eval_every=2, batch_size=16, num_negatives=4)
    params["diffusion"].update(num_epochs=2, num_diffusion_steps=10, report_steps=[0, 5, 10])
    params["train"].update(num_epochs=2, eval_every=1, batch_size=16, num_negatives=4,
                           hardness_levels=[{"step": 2, "weight": 1.0, "margin": 0.5}])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")  # custom plot templates
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    return root


def status(project: Path) -> dict:
    """`dvc status` as {stage: what changed}."""
    return json.loads(run(["dvc", "status", "--json"], project).stdout)


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_repro_then_experiment_reruns_only_affected_stages(project: Path) -> None:
    run(["dvc", "repro"], project)
    metrics = json.loads((project / "metrics" / "eval.json").read_text())  # the headline: both directions
    breakdowns = json.loads((project / "metrics" / "eval_breakdowns.json").read_text())
    for split in ("valid", "test"):
        for side, report in (("head", breakdowns), ("tail", breakdowns), ("both", metrics)):
            for policy in ("optimistic", "realistic", "pessimistic"):
                assert set(report[split][side][policy]) >= {"mrr", "mean_rank", "hits_at_1", "hits_at_3", "hits_at_10"}
        assert set(metrics[split]) == {"both", "seconds"} and "by_category" in breakdowns[split]
    data_report = json.loads((project / "metrics" / "data.json").read_text())
    assert data_report["raw"]["train"]["num_triples"] == 22
    diffusion = json.loads((project / "metrics" / "diffusion.json").read_text())
    assert set(diffusion["chains"]) == {"full", "stride_0_eta_1"}  # params.yaml's report_chains, side by side
    strided = diffusion["chains"]["stride_0_eta_1"]
    diffusion = diffusion["chains"]["full"]
    assert set(diffusion["levels"]) == {"structural", "text"} and set(strided["levels"]) == {"structural", "text"}
    assert set(diffusion["levels"]["text"]["tail"]) >= {"step_0", "step_5", "step_10", "easy_to_hard_ordered"}
    train_report = json.loads((project / "metrics" / "train.json").read_text())
    assert (train_report["sampler"], train_report["hard_loss"]) == ("dhns", "reference")
    for form in ("reference", "per_view"):
        share = train_report["first_batch"][form]
        assert 0 < share["share_of_total"] < 1 and share["hard_loss"] > 0
    assert diffusion["fused"]["tail"]["step_0"]["mean_score"] < 1e9  # generated entities scored fused, as in NTAT
    assert set(diffusion["fused"]["true_tail_attention"]) == {"structural", "text"}
    assert_dvclive_outputs(project)
    rendered = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)["data"]
    assert {"plots/pretrain/metrics/valid_mrr.tsv", "plots/train/metrics/loss.tsv",
            "plots/diffusion/custom/hardness.json"} <= set(rendered)
    hardness = rendered["plots/diffusion/custom/hardness.json"][0]["content"]  # the custom template in .dvc/plots
    assert hardness["facet"]["field"] == "panel" and hardness["spec"]["encoding"]["color"]["field"] == "steps_left"
    assert {row["steps_left"] for row in hardness["data"]["values"]} == {0, 5, 10}
    assert_renders_offline(project, set(rendered))
    manifest = json.loads((project / "data" / "features" / "manifest.json").read_text())
    assert "text" in manifest["modalities"] and "image" in manifest["absent"]
    bytecode = project / "src" / "dhns" / "features" / "__pycache__" / "store.cpython-311.pyc"
    bytecode.parent.mkdir(exist_ok=True)
    bytecode.write_bytes(b"compiled elsewhere")  # differs per checkout; must not count as a changed dep
    assert status(project) == {"feature_inputs": ["always changed"]}  # it digests the files params name

    # a library module changed: exactly the stages whose code imports it are stale, none of the others
    step = project / "src" / "dhns" / "training" / "step.py"
    original = step.read_text()
    step.write_text(original.replace("max_grad_norm: float = 0.0", "max_grad_norm: float = 1.0", 1))
    assert set(status(project)) == {"feature_inputs", "pretrain", "diffusion", "train"}
    step.write_text(original)
    loader = project / "src" / "dhns" / "features" / "bundle.py"
    loader.write_text(loader.read_text() + "\n")
    assert set(status(project)) == {"feature_inputs", "features", "pretrain", "diffusion", "train", "evaluate"}
    loader.write_text(loader.read_text()[:-1])
    assert status(project) == {"feature_inputs": ["always changed"]}
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)

    current = yaml.safe_load((project / "params.yaml").read_text())
    other = "distmult" if current["model"]["name"] != "distmult" else "transe"
    experiment = run(["dvc", "exp", "run", "-S", f"model.name={other}"], project)
    output = experiment.stdout + experiment.stderr
    assert "Stage 'prepare' didn't change, skipping" in output
    assert "Stage 'features' didn't change, skipping" in output
    for stage in ("pretrain", "diffusion", "train", "evaluate"):
        assert f"Running stage '{stage}'" in output
    assert len(run(["dvc", "exp", "list", "--name-only"], project).stdout.split()) == 1  # DVC's; none by dvclive
    # the switch alone brought the other scorer's settings, and DVC tracks exactly those
    preset = current["scorers"][other]
    assert json.loads((project / "models" / "pretrain" / "model.json").read_text())["model"]["margin"] == \
        preset["model"]["margin"]
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert lock["pretrain"]["params"]["params.yaml"][f"scorers.{other}.pretrain"] == preset["pretrain"]
    assert lock["train"]["params"]["params.yaml"][f"scorers.{other}.train"] == preset["train"]
    assert not any(key.startswith("scorers.") and other not in key for key in lock["pretrain"]["params"]["params.yaml"])
    diff = run(["dvc", "metrics", "diff", "--json"], project)
    changed = json.loads(diff.stdout)
    assert any(key.startswith("test.both.realistic.") for key in changed.get("metrics/eval.json", {}))


def test_the_joint_protocol_alone_trains_from_scratch_and_skips_pretrain_and_diffusion(project: Path) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    run(["dvc", "exp", "run", "-n", "joint", "-S", "train.protocol=joint", "-S", "train.num_epochs=2",
         "-S", "train.eval_every=1"], project)
    pretrain = json.loads((project / "metrics" / "pretrain.json").read_text())
    diffusion = json.loads((project / "metrics" / "diffusion.json").read_text())
    assert pretrain["skipped"] and diffusion["skipped"] and "joint" in pretrain["reason"]
    assert not (project / "models" / "pretrain" / "model.safetensors").exists()
    train = json.loads((project / "metrics" / "train.json").read_text())
    assert train["protocol"] == "joint" and train["epochs_run"] == 2
    batches = 2 * -(-22 // 16)  # 22 training triples in batches of 16, 2 epochs: a generator step each
    assert train["generator_steps"] == batches
    evaluation = json.loads((project / "metrics" / "eval.json").read_text())
    assert 0.0 < evaluation["test"]["both"]["realistic"]["mrr"] <= 1.0
    run(["dvc", "plots", "show", "--json"], project)  # the skipped stages' empty curves do not break plotting


def test_compare_run_shares_pretraining_between_arms_and_skips_finished_cells(project: Path) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    grid = ["--datasets", "TINY", "--scorers", "transe", "--arms", "self_adversarial,dhns", "--seeds", "0"]
    first = run([sys.executable, "-m", "dhns.compare", "run", *grid], project)
    output = first.stdout + first.stderr
    assert output.count("Running stage 'pretrain'") == 1  # the second arm reuses the seed's pretrained model
    assert output.count("Running stage 'train'") == 2
    cells = sorted((project / "docs" / "results" / "cells" / "TINY" / "transe").glob("*/seed0.json"))
    assert [path.parent.name for path in cells] == ["dhns", "self_adversarial"]
    dhns, base = (json.loads(path.read_text()) for path in cells)
    assert dhns["settings"]["pretrain"] == base["settings"]["pretrain"]
    assert (dhns["settings"]["train"]["sampler"], base["settings"]["train"]["sampler"]) == ("dhns", "self_adversarial")
    assert dhns["ntat"]["hardware"] and dhns["test"]["both"]["optimistic"]["mrr"] > 0
    names = run(["dvc", "exp", "list", "--name-only"], project).stdout.split()
    assert sorted(names) == ["cmp-tiny-transe-dhns-s0", "cmp-tiny-transe-self_adversarial-s0"]
    assert "params.yaml" not in run(["git", "status", "--porcelain"], project).stdout  # put back after each cell
    again = run([sys.executable, "-m", "dhns.compare", "run", *grid], project)
    assert "0 of 2 cells to run" in again.stderr and "Running stage" not in again.stdout
    page = (project / "docs" / "results" / "README.md").read_text()
    assert "| dhns | self_adversarial | 0 |" in page and "## TINY, transe" in page


def read_curve(path: Path) -> list[tuple[int, float]]:
    """A dvclive TSV (`step<TAB>name` rows) as (step, value) pairs."""
    header, *rows = path.read_text().splitlines()
    assert header.split("\t")[0] == "step", header
    return [(int(step), float(value)) for step, value in (row.split("\t") for row in rows)]


def assert_dvclive_outputs(project: Path) -> None:
    """One step per epoch in every curve, the summaries where dvc.yaml says, and nothing dvclive-made besides."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for stage, eval_every in (("pretrain", params["pretrain"]["eval_every"]), ("train", 1)):
        epochs = params[stage]["num_epochs"]
        summary = json.loads((project / "metrics" / f"{stage}.json").read_text())
        assert summary["epochs_run"] == summary["step"] == epochs  # patience never stops a tiny run this short
        assert [step for step, _ in read_curve(project / "plots" / stage / "metrics" / "loss.tsv")] == \
            list(range(1, epochs + 1))
        valid = read_curve(project / "plots" / stage / "metrics" / "valid_mrr.tsv")
        assert [step for step, _ in valid] == list(range(eval_every, epochs + 1, eval_every))
        assert summary["valid"]["both"]["realistic"]["mrr"] == max(value for _, value in valid)
    diffusion = read_curve(project / "plots" / "diffusion" / "metrics" / "loss.tsv")
    assert [step for step, _ in diffusion] == [1, 2]
    assert json.loads((project / "metrics" / "diffusion.json").read_text())["loss"] == diffusion[-1][1]
    assert (project / "dvc.yaml").read_text() == (REPO / "dvc.yaml").read_text()  # dvclive left it alone
    assert not [path for pattern in ("plots/**/dvc.yaml", "plots/**/report.*", "dvclive") for path in project.glob(pattern)]
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    (workspace,) = [revision["data"] for revision in shown.values()]  # keyed "" before the first commit
    assert workspace["metrics/pretrain.json"]["data"]["best_epoch"] >= 1
    assert "first_batch" in workspace["metrics/train.json"]["data"]


def assert_renders_offline(project: Path, plot_files: set[str]) -> None:
    """`python -m dhns.plots`: an SVG and a PNG per declared plot and one page that needs no network."""
    out = project / "rendered"
    result = run([sys.executable, "-m", "dhns.plots", "--out", str(out), "--figure", str(out / "all.png")], project)
    assert f"{len(plot_files)} plots" in result.stdout
    for plot_file in plot_files:
        name = "-".join(Path(plot_file).with_suffix("").parts[1:])
        assert (out / f"{name}.svg").read_text(encoding="utf-8").startswith("<svg")
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page and "<script src" not in page and "vegaEmbed" in page
    assert page.count("<section>") == len(plot_files)
    assert (out / "all.png").stat().st_size > 0


def test_bad_raw_file_fails_with_location_and_keeps_previous_outputs(project: Path) -> None:
    run([sys.executable, "stages/prepare.py"], project)
    before = {p.name: p.read_bytes() for p in (project / "data" / "prepared").iterdir()}
    train = project / "data" / "raw" / "TINY" / "train2id.txt"
    lines = train.read_text().splitlines()
    lines[5] = "3 oops 1"
    train.write_text("\n".join(lines) + "\n")
    result = run([sys.executable, "stages/prepare.py"], project, check=False)
    assert result.returncode != 0
    assert "train2id.txt, line 6" in result.stderr and "integer" in result.stderr
    assert "Traceback" not in result.stderr
    after = {p.name: p.read_bytes() for p in (project / "data" / "prepared").iterdir()}
    assert after == before
