"""The cache never lies, checked with the real `dvc` on a tiny project: what a stage reads makes it rerun,
and a stage that fails leaves the outputs of the last good run in place, metrics included."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dhns.stage import cache_objects, file_md5, locked_outputs, object_path, restore_outputs
from test_pipeline import project, run  # noqa: F401  (the fixture: a git + DVC copy of this pipeline)


def output_bytes(root: Path, paths: list[str]) -> dict[str, bytes]:
    files = {}
    for name in paths:
        path = root / name
        for item in ([p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]):
            files[item.relative_to(root).as_posix()] = item.read_bytes()
    return files


def set_params(root: Path, **sections: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_failed_repro_or_experiment_puts_the_previous_outputs_back(project: Path) -> None:
    run(["dvc", "repro", "prepare"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "prepared"], project)
    outputs = ["data/prepared", "metrics/data.json"]
    before = output_bytes(project, outputs)
    assert "metrics/data.json" in before and len(before) > 3

    train = project / "data" / "raw" / "TINY" / "train2id.txt"
    lines = train.read_text().splitlines()
    lines[5] = "3 oops 1"
    train.write_text("\n".join(lines) + "\n")
    failed = run(["dvc", "repro", "prepare"], project, check=False)
    assert failed.returncode != 0
    assert "train2id.txt, line 6" in failed.stderr + failed.stdout
    assert "metrics/data.json restored from the DVC cache" in failed.stderr + failed.stdout
    assert output_bytes(project, outputs) == before  # byte for byte, the cache: false metrics included
    status = run(["dvc", "status", "prepare"], project).stdout
    assert "modified:" in status and "data/raw/TINY" in status and "deleted" not in status

    run(["git", "checkout", "--", "data/raw"], project)  # good data again; now bad params, through an experiment
    failed = run(["dvc", "exp", "run", "-S", "data.valid_from_train=-5", "prepare"], project, check=False)
    assert failed.returncode != 0 and "valid_from_train" in failed.stderr + failed.stdout
    assert output_bytes(project, outputs) == before


def test_restore_takes_a_never_cached_metrics_file_from_git_only_if_it_matches_the_lock(tmp_path: Path) -> None:
    run(["git", "init", "-q"], tmp_path)
    metrics = tmp_path / "metrics" / "m.json"
    metrics.parent.mkdir()
    metrics.write_text('{"mrr": 0.5}\n')
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "m"], tmp_path)
    md5 = hashlib.md5(metrics.read_bytes()).hexdigest()
    lock = {"schema": "2.0", "stages": {"s": {"cmd": "x", "outs": [{"path": "metrics/m.json", "hash": "md5", "md5": md5}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    metrics.unlink()
    assert restore_outputs(tmp_path, "s") == {"metrics/m.json": "restored from git HEAD"}
    assert metrics.read_text() == '{"mrr": 0.5}\n'
    lock["stages"]["s"]["outs"][0]["md5"] = "0" * 32  # the lock records another version: git's is not it
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    metrics.unlink()
    assert "NOT restored" in restore_outputs(tmp_path, "s")["metrics/m.json"]
    assert not metrics.exists()  # nothing wrong was put in its place


def test_files_named_by_params_are_dependencies(project: Path) -> None:
    """Replacing an imported feature file, or a file of a local encoder folder, reruns features."""
    imports = project / "imports"
    imports.mkdir()
    num_entities = 36
    torch.save(torch.ones(num_entities, 3), imports / "TINY-textual.pth")
    set_params(project, features={"import_dir": str(imports)})
    run(["dvc", "repro", "features"], project)
    assert "up to date" in run(["dvc", "status", "features"], project).stdout
    skipped = run(["dvc", "repro", "features"], project)
    assert "Stage 'features' didn't change, skipping" in skipped.stdout

    torch.save(torch.full((num_entities, 3), 2.0), imports / "TINY-textual.pth")  # same name, other values
    rerun = run(["dvc", "repro", "features"], project)
    assert "Running stage 'features'" in rerun.stdout
    table = json.loads((project / "data" / "feature_inputs.json").read_text())
    assert table["imported"]["text"]["file"] == "TINY-textual.pth"

    encoder = Path(yaml.safe_load((project / "params.yaml").read_text())["features"]["text_encoder"])
    local = project / "encoder"
    local.mkdir()
    for item in encoder.iterdir():
        (local / item.name).write_bytes(item.read_bytes())
    set_params(project, features={"import_dir": "", "text_encoder": str(local)})
    run(["dvc", "repro", "features"], project)
    config = local / "config.json"
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "layer_norm_eps": 1e-5}))  # the folder changed, its name did not
    rerun = run(["dvc", "repro", "features"], project)
    assert "Running stage 'features'" in rerun.stdout


MAKE_OUTPUTS = '''from pathlib import Path
Path("out/sub").mkdir(parents=True)
Path("out/a.txt").write_text("alpha\\n")
Path("out/sub/b.txt").write_text("beta\\n")
Path("out/c.txt").write_text("gamma\\n")
Path("m.json").write_text('{"mrr": 0.5}\\n')
'''


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A git + DVC project whose stage `make` has run once: a cached folder `out` (3 files) and a cached `m.json`."""
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    (tmp_path / "make.py").write_text(MAKE_OUTPUTS)
    stages = {"stages": {"make": {"cmd": "python make.py", "deps": ["make.py"], "outs": ["out", "m.json"]}}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(stages))
    run(["dvc", "repro", "-q"], tmp_path)
    return tmp_path


def locked_md5(root: Path, path: str) -> str:
    (out,) = [out for out in locked_outputs(root, "make") if out["path"] == path]
    return out["md5"]


def overwrite_object(root: Path, md5: str, payload: bytes) -> None:
    """Damage one object of DVC's cache in place (DVC keeps them read-only)."""
    cached = object_path(cache_objects(root), md5)
    cached.chmod(0o644)
    cached.write_bytes(payload)


def folder_state(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_comes_back_from_verified_cache_objects_only(made: Path) -> None:
    good = folder_state(made / "out")
    manifest_md5 = locked_md5(made, "out")
    assert manifest_md5.endswith(".dir")
    # DVC names the manifest after its own md5: the check of the manifest relies on it
    assert file_md5(object_path(cache_objects(made), manifest_md5)) == manifest_md5.removesuffix(".dir")
    shutil.rmtree(made / "out")
    assert restore_outputs(made, "make") == {"out": "restored from the DVC cache (3 files)"}
    assert folder_state(made / "out") == good

    (made / "out" / "a.txt").write_text("edited by the failed run\n")  # the folder now differs from the lock
    stale = folder_state(made / "out")
    b_md5 = hashlib.md5(good["sub/b.txt"]).hexdigest()
    corrupted = b"corrupted\n"
    overwrite_object(made, b_md5, corrupted)
    outcome = restore_outputs(made, "make")
    assert outcome == {"out": f"NOT restored: cached object for sub/b.txt is corrupted "
                              f"(md5 {hashlib.md5(corrupted).hexdigest()}, expected {b_md5})"}
    assert folder_state(made / "out") == stale  # nothing unverified was put in place
    assert not [p.name for p in made.iterdir() if p.name.startswith(".out.")]  # nor left behind


def test_a_folder_is_not_restored_from_a_corrupted_manifest(made: Path) -> None:
    good = folder_state(made / "out")
    manifest_md5 = locked_md5(made, "out")
    a_md5 = hashlib.md5(good["a.txt"]).hexdigest()
    # still a valid manifest, of an intact object, but not the one the lock names: it would restore one file
    overwrite_object(made, manifest_md5, json.dumps([{"md5": a_md5, "relpath": "a.txt"}]).encode())
    shutil.rmtree(made / "out" / "sub")
    outcome = restore_outputs(made, "make")
    assert outcome["out"].startswith(f"NOT restored: its cached manifest {manifest_md5} is corrupted (md5 "), outcome
    assert folder_state(made / "out") == {"a.txt": good["a.txt"], "c.txt": good["c.txt"]}


def test_a_file_is_not_restored_from_a_corrupted_cache_object(made: Path) -> None:
    md5 = locked_md5(made, "m.json")
    overwrite_object(made, md5, b'{"mrr": 0.9}\n')
    (made / "m.json").unlink()
    outcome = restore_outputs(made, "make")
    assert outcome == {"m.json": "NOT restored: neither the DVC cache nor git HEAD holds the version dvc.lock records"}
    assert not (made / "m.json").exists()
