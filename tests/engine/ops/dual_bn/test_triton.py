"""Runs the Triton kernel checks in triton_cases.py: in this process on CUDA (or when
TRITON_INTERPRET=1 was set before the run), else in a subprocess under the Triton interpreter,
because TRITON_INTERPRET only takes effect if set before triton is first imported."""
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
    from tests.engine.ops.dual_bn.triton_cases import *  # noqa: F401,F403  (collected here)
else:
    def test_triton_kernels_under_interpreter():
        env = dict(os.environ, TRITON_INTERPRET="1")
        res = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             os.path.join(HERE, "triton_cases.py")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        tail = (res.stdout + res.stderr)[-4000:]
        assert res.returncode == 0, tail
        assert " passed" in res.stdout and "failed" not in res.stdout and "skipped" not in res.stdout, tail
