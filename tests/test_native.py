"""Building and loading the compiled distance loops (`dhns.native`), and falling back without them."""

import logging
import shutil

import pytest
import torch

from dhns import native
from dhns.models.interactions import make_interaction


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """An empty cache folder and no library loaded yet; the process's library is restored afterwards."""
    monkeypatch.setenv("DHNS_NATIVE_CACHE", str(tmp_path / "cache"))
    native._library.cache_clear()
    yield tmp_path / "cache"
    native._library.cache_clear()


def test_the_library_is_built_once_into_the_cache_and_reused(fresh_library, monkeypatch):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    assert native.available()
    built = list(fresh_library.glob("kernels-*.so"))
    assert len(built) == 1 and built[0].stat().st_size > 0
    stamp = built[0].stat().st_mtime_ns
    native._library.cache_clear()
    monkeypatch.setattr(native.subprocess, "run", _no_compiling(native.subprocess.run))
    assert native.available()  # loaded from the cache: nothing compiled a second time
    assert built[0].stat().st_mtime_ns == stamp


def _no_compiling(run):
    def guarded(command, *args, **kwargs):
        assert "--version" in command, f"compiled again: {command}"
        return run(command, *args, **kwargs)
    return guarded


def test_without_a_compiler_the_scorers_keep_their_pytorch_form(fresh_library, monkeypatch, caplog):
    monkeypatch.setenv("CC", str(fresh_library / "no-such-compiler"))
    with caplog.at_level(logging.WARNING, logger="dhns.native"):
        assert not native.available()
    assert "PyTorch form" in caplog.text
    transe = make_interaction("transe", 3, 2.0)
    queries, entities = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    with torch.no_grad():
        torch.testing.assert_close(transe.compare_all(queries, entities), torch.tensor([[2.0 - 3.0, 2.0]]))


def test_the_environment_switch_turns_the_loops_off(monkeypatch):
    monkeypatch.setenv("DHNS_NATIVE", "0")
    assert not native.available()
    assert not native.usable(torch.zeros(2, 2))


def test_only_float32_cpu_tensors_take_the_compiled_loops():
    if not native.available():
        pytest.skip("no C compiler")
    assert native.usable(torch.zeros(2, 2), torch.zeros(3, 2))
    assert not native.usable(torch.zeros(2, 2), torch.zeros(3, 2, dtype=torch.bfloat16))
    assert not native.usable(torch.zeros(2, 2, dtype=torch.float64))
