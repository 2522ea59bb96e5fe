"""Shared by the diffusion tests."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy shared CPU their spin-waits cost 10x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
