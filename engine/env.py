"""Every environment variable synthclone reads (or sets for a library), with its meaning, and a
typed accessor for each; product code reads the environment only through this module.

:data:`VARS` is the list (the README's table is checked against it by a test). ``loaders`` may
not import ``engine`` (DESIGN.md); it reads no variable today, and one it needs is listed here
all the same. ``setup.py`` runs before the package exists and reads its build switches itself.
Nothing here changes the environment at import time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from engine.errors import ConfigError


@dataclass(frozen=True)
class EnvVar:
    name: str
    meaning: str
    default: str
    """What happens when it is unset."""
    used_by: str
    """Who reads it (``synthclone`` modules, a library, the build, the tests)."""


VARS: tuple[EnvVar, ...] = (
    EnvVar("SYNTHCLONE_CACHE", "root of downloaded lists (Places365), LLM responses, the offline "
           "tokenizer, WordNet copy and compiled kernels", "~/.cache/synthclone",
           "engine.paths.cache_dir"),
    EnvVar("SYNTHCLONE_OPS_BACKEND", "force op backends: a name for every op (`ref`) or "
           "`op=name,...` (`dual_bn=triton,attention=math`)", "each op picks its first usable "
           "backend", "engine.ops.registry, engine.generate.attention"),
    EnvVar("SYNTHCLONE_NO_EXT", "`1`: ignore (at run time) or skip building (setup.py) the C++ "
           "extension; every op uses its PyTorch reference", "use the extension when built",
           "engine.ops._ext, setup.py"),
    EnvVar("SYNTHCLONE_FORCE_CUDA", "`1`: build the CUDA kernels even when no GPU is visible at "
           "build time", "CUDA kernels only when a GPU is usable", "setup.py"),
    EnvVar("CXX", "C++ compiler for the extension", "c++", "setup.py"),
    EnvVar("HF_HUB_OFFLINE", "`1`: model hub lookups fail fast (no network); error messages "
           "say so", "hub lookups allowed", "diffusers/transformers/open_clip, engine.clip"),
    EnvVar("TRANSFORMERS_OFFLINE", "`1`: transformers makes no network calls (the test suite "
           "sets it)", "network allowed", "transformers"),
    EnvVar("OPENAI_API_KEY", "API key sent to the LLM server of `cd`/`sd` prompts (the variable's "
           "name is the `api_key_env` option)", "no Authorization header",
           "engine.prompts.llm"),
    EnvVar("RANK", "torchrun rank: with WORLD_SIZE, `generate --shard auto` writes shard "
           "RANK/WORLD_SIZE", "not distributed", "engine.generate.config"),
    EnvVar("WORLD_SIZE", "torchrun process count (see RANK)", "not distributed",
           "engine.generate.config"),
    EnvVar("LOCAL_RANK", "torchrun rank on this node: `--device auto` uses CUDA device "
           "LOCAL_RANK (modulo the visible devices)", "cuda:0",
           "engine.generate.setup_model"),
    EnvVar("SLURM_PROCID", "SLURM task id: with SLURM_NTASKS, `generate --shard auto` writes "
           "shard SLURM_PROCID/SLURM_NTASKS (when RANK/WORLD_SIZE are unset)",
           "not a SLURM task", "engine.generate.config"),
    EnvVar("SLURM_NTASKS", "SLURM task count (see SLURM_PROCID)", "not a SLURM task",
           "engine.generate.config"),
    EnvVar("SLURM_JOB_NODELIST", "SLURM node list: `synthclone train` under srun sets MASTER_ADDR "
           "to its first host when unset", "not a SLURM job", "engine.train.distributed"),
    EnvVar("SLURM_JOB_ID", "SLURM job id: `synthclone train` under srun sets MASTER_PORT to "
           "15000 + id mod 20000 when unset", "not a SLURM job", "engine.train.distributed"),
    EnvVar("MASTER_ADDR", "rendezvous host of a distributed `synthclone train` (torchrun sets "
           "it; under SLURM the first host of SLURM_JOB_NODELIST)", "set by the launcher",
           "torch.distributed, engine.train.distributed"),
    EnvVar("MASTER_PORT", "rendezvous port of a distributed `synthclone train` (see MASTER_ADDR)",
           "set by the launcher", "torch.distributed, engine.train.distributed"),
    EnvVar("TORCHINDUCTOR_CACHE_DIR", "where torch.compile keeps compiled kernels; `synthclone "
           "generate --compile` sets it to $SYNTHCLONE_CACHE/inductor when unset",
           "$SYNTHCLONE_CACHE/inductor (torch's own: /tmp/torchinductor_$USER)",
           "torch, engine.generate.setup_model"),
    EnvVar("TRITON_INTERPRET", "`1`: run Triton kernels on the CPU with Triton's interpreter "
           "(tests of the dual-BN kernels)", "Triton needs CUDA", "triton, engine.ops"),
    EnvVar("OMP_NUM_THREADS", "OpenMP threads; the benchmarks set it with BENCH_THREADS",
           "number of cores", "torch, bench.common"),
    EnvVar("BENCH_THREADS", "intra-op threads of `python -m bench` runs", "1 or 2 (per "
           "benchmark)", "bench"),
    EnvVar("SYNTHCLONE_SHARED_DIR", "tests only: the folder holding shared test data "
           "(places365_categories.txt)", "../shared beside the checkout", "tests/conftest.py"),
)
"""Every variable, in the README's order."""


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _flag(name: str) -> bool:
    return _get(name) == "1"


def _int(name: str) -> int | None:
    value = _get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


# ------------------------------------------------------------------------------ accessors
def cache_root() -> str:
    """``$SYNTHCLONE_CACHE`` or ``~/.cache/synthclone`` (not created here)."""
    return _get("SYNTHCLONE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                    "synthclone")


def ops_backend() -> str | None:
    """The raw ``SYNTHCLONE_OPS_BACKEND`` value (parsed by ``engine.ops.registry``)."""
    value = _get("SYNTHCLONE_OPS_BACKEND")
    return value.strip() if value else None


def no_ext() -> bool:
    return _flag("SYNTHCLONE_NO_EXT")


def hf_hub_offline() -> bool:
    return _flag("HF_HUB_OFFLINE")


def secret(name: str = "OPENAI_API_KEY") -> str | None:
    """An API key from the variable ``name`` (the LLM config's ``api_key_env``)."""
    return _get(name)


def triton_interpret() -> bool:
    return _flag("TRITON_INTERPRET")


def inductor_cache_dir() -> str | None:
    return _get("TORCHINDUCTOR_CACHE_DIR")


def use_project_inductor_cache() -> str:
    """Point torch.compile's cache at ``$SYNTHCLONE_CACHE/inductor`` unless the user chose
    one, so compiled kernels live in one place whether run under ``make`` or directly. Call it
    at a command's start (before the first compile); returns the folder in use."""
    path = inductor_cache_dir()
    if path is None:
        path = os.path.join(cache_root(), "inductor")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    return path


class Launcher(NamedTuple):
    """A process's place among its peers, from a launcher's environment."""

    rank: int
    world_size: int
    source: str
    """Where it came from, e.g. ``"RANK=1, WORLD_SIZE=4 (torchrun)"``."""


def launcher() -> Launcher | None:
    """torchrun's RANK/WORLD_SIZE, else SLURM's SLURM_PROCID/SLURM_NTASKS, else None."""
    rank, world = _int("RANK"), _int("WORLD_SIZE")
    if rank is not None and world is not None:
        return Launcher(rank, world, f"RANK={rank}, WORLD_SIZE={world} (torchrun)")
    rank, world = _int("SLURM_PROCID"), _int("SLURM_NTASKS")
    if rank is not None and world is not None:
        return Launcher(rank, world, f"SLURM_PROCID={rank}, SLURM_NTASKS={world} (SLURM)")
    return None


def local_rank() -> int | None:
    return _int("LOCAL_RANK")


def bench_threads() -> int | None:
    return _int("BENCH_THREADS")
