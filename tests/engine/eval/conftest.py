"""tests/engine/eval: one torch thread (tiny ops on a shared CPU are much faster without
OpenMP threads spinning against other processes; PLATFORM.md), restored afterwards."""
import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
