"""Reading the launcher's environment (torchrun, SLURM)."""
import pytest
import torch

from engine.errors import ConfigError
from engine.train.distributed import first_slurm_host, init_distributed, launcher_env


def test_torchrun_variables():
    assert launcher_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (3, 8, 1)


def test_slurm_variables():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1"}
    assert launcher_env(env) == (5, 16, 1)
    assert launcher_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # one task: no DDP
    assert launcher_env({}) is None


@pytest.mark.parametrize("nodelist,host", [("gpu[03-05,07],cpu1", "gpu03"), ("node7", "node7"),
                                           ("a100-[12,14]", "a100-12"), ("n1,n2", "n1")])
def test_first_slurm_host(nodelist, host):
    assert first_slurm_host(nodelist) == host


def test_one_process_needs_no_group():
    info = init_distributed("cpu", env={})
    assert (info.rank, info.world_size, info.enabled, info.device) == (0, 1, False,
                                                                      torch.device("cpu"))
    assert not torch.distributed.is_initialized()


def test_cuda_device_without_cuda_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        init_distributed("cuda", env={})
