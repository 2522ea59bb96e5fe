"""Nothing lost, nothing retrained: `dvc push` sends every artifact to the remote; a fresh clone gets them back
with `dvc pull`, and `dvc repro` there runs nothing and leaves the metrics byte for byte as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import yaml

from test_pipeline import REPO, project, run  # noqa: F401  (project is a fixture: pytest finds it by name)


def lock_outs(root: Path) -> list[str]:
    """Every output recorded in dvc.lock (cached outs, metrics and plots alike): nothing hard-coded."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return sorted({out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])})


def snapshot(root: Path, paths: list[str]) -> dict[str, bytes]:
    """Relative file path -> bytes, for each path (a file, or a folder walked recursively)."""
    files: dict[str, bytes] = {}
    for path in paths:
        target = root / path
        for file in sorted(target.rglob("*")) if target.is_dir() else [target]:
            if file.is_file():
                files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


def use_remote(root: Path, url: Path) -> None:
    """Point a checkout at a remote the way a user overrides the committed default: in .dvc/config.local."""
    run(["dvc", "remote", "add", "--local", "--default", "--force", "storage", str(url)], root)


def test_default_remote_is_a_folder_outside_the_working_tree() -> None:
    name = run(["dvc", "config", "--project", "core.remote"], REPO).stdout.strip()
    assert name, "no default remote in .dvc/config"
    url = run(["dvc", "config", "--project", f"remote.{name}.url"], REPO).stdout.strip()
    if len(urlparse(url).scheme) <= 1:  # a local path (a one-letter scheme is a Windows drive), not s3://, ssh://...
        # DVC resolves a relative url against the folder holding the config file, .dvc/.
        location = (REPO / ".dvc" / url).resolve()
        assert not location.is_relative_to(REPO.resolve()), f"the remote {location} lies inside the working tree"


def test_push_then_pull_in_a_fresh_clone_restores_everything_without_rerunning(project: Path, tmp_path: Path) -> None:
    # The project as this repository commits it: same ignores and the same DVC config (default remote included).
    for item in (".gitignore", ".dvcignore", ".dvc/config"):
        if (REPO / item).is_file():
            shutil.copy(REPO / item, project / item)
    remote = tmp_path / "remote"  # a test never touches the default remote, whatever it is
    use_remote(project, remote)

    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "pipeline run"], project)
    stages = set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert set(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == stages
    outs = lock_outs(project)
    original = snapshot(project, outs)
    assert all(any(f == out or f.startswith(out + "/") for f in original) for out in outs), "an out is missing or empty"

    run(["dvc", "push"], project)
    assert json.loads(run(["dvc", "status", "--cloud", "--json"], project).stdout) == {}, "not everything was pushed"
    assert any(p.is_file() for p in remote.rglob("*"))

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / ".dvc" / "cache").exists()
    assert Path(run(["dvc", "cache", "dir"], clone).stdout.strip()).resolve() == (clone / ".dvc" / "cache").resolve()
    cached = [out for out in outs if not (clone / out).exists()]  # git carries metrics and plots (cache: false) only
    assert {"data/prepared", "data/features"} <= set(cached) and any(out.startswith("models/") for out in cached)
    use_remote(clone, remote)

    run(["dvc", "pull"], clone)
    assert snapshot(clone, outs) == original
    # feature_inputs always runs (it digests the files params name, which DVC cannot list); nothing else is stale
    assert json.loads(run(["dvc", "status", "--json"], clone).stdout) == {"feature_inputs": ["always changed"]}
    repro = run(["dvc", "repro"], clone)
    output = repro.stdout + repro.stderr
    assert output.count("Running stage") == 1 and "Running stage 'feature_inputs'" in output, output
    for stage in stages - {"feature_inputs"}:
        assert f"Stage '{stage}' didn't change, skipping" in output, output
    metrics = sorted(p.relative_to(project).as_posix() for p in (project / "metrics").glob("*.json"))
    assert metrics and snapshot(clone, metrics) == snapshot(project, metrics)
    assert snapshot(clone, outs) == original
    assert run(["git", "status", "--porcelain"], clone).stdout == "", "the clone changed tracked or new files"  # digests too
