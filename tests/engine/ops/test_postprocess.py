"""vae_to_uint8: the C++ op against its torch reference, opcheck, the registry fallback."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.ops import registry
from engine.ops._ext import extension_status
from engine.ops.postprocess import vae_to_uint8, vae_to_uint8_ref


def _numpy_truth(x: torch.Tensor, d: int) -> np.ndarray:
    """Independent numpy statement of the spec, in float64 (ties are avoided by the inputs)."""
    a = np.clip(x.double().numpy() / 2 + 0.5, 0, 1)  # (N, C, H, W)
    n, c, h, w = a.shape
    a = a.reshape(n, c, h // d, d, w // d, d).mean(axis=(3, 5))
    return np.rint(a * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _require_extension():
    loaded, why = extension_status()
    if not loaded:
        if os.environ.get("SYNTHCLONE_NO_EXT") == "1":
            pytest.skip("SYNTHCLONE_NO_EXT=1: extension deliberately disabled")
        pytest.fail(f"the C++ extension should be built here: {why}")


def _inputs(dtype=torch.float32, shape=(2, 3, 16, 24), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 0.8).clamp(-1.3, 1.3).to(dtype)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_reference_matches_numpy_spec(d):
    x = _inputs()
    out = vae_to_uint8_ref(x, d)
    assert out.dtype == torch.uint8 and out.shape == (2, 16 // d, 24 // d, 3)
    diff = np.abs(out.numpy().astype(int) - _numpy_truth(x, d).astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_extension_matches_reference(d, dtype):
    _require_extension()
    x = _inputs(dtype, shape=(3, 3, 32, 48), seed=d)
    got = vae_to_uint8(x, d, backend="csrc")
    want = vae_to_uint8_ref(x, d)
    assert got.shape == want.shape and got.dtype == torch.uint8
    assert got.is_contiguous()
    diff = (got.int() - want.int()).abs()
    # Same float32 arithmetic in the same order: exact, but allow a 1-level tie flip.
    assert diff.max() <= 1 and (diff == 0).float().mean() > 0.999


def test_extension_handles_non_contiguous_and_extremes():
    _require_extension()
    x = _inputs(shape=(2, 3, 8, 8)).permute(0, 1, 3, 2)  # non-contiguous view
    x[0, 0, 0, :2] = torch.tensor([-5.0, 5.0])
    torch.testing.assert_close(vae_to_uint8(x, 1, backend="csrc"), vae_to_uint8_ref(x, 1), atol=0, rtol=0)
    assert vae_to_uint8(x, 1, backend="csrc")[0, 0, :2, 0].tolist() == [0, 255]


def test_opcheck():
    _require_extension()
    for d in (1, 2):
        torch.library.opcheck(torch.ops.synthclone.vae_to_uint8.default, (_inputs(shape=(2, 3, 8, 8)), d))


def test_registry_prefers_extension_and_env_forces_reference(monkeypatch):
    _require_extension()
    assert registry.select("postprocess", device_type="cpu").name == "csrc"
    monkeypatch.setenv(registry.ENV_VAR, "postprocess=ref")
    assert registry.select("postprocess", device_type="cpu").name == "ref"
    monkeypatch.setenv(registry.ENV_VAR, "nonsense")
    with pytest.raises(ValueError, match="unknown backend"):
        vae_to_uint8(_inputs(), 1)


def test_fallback_without_extension_in_fresh_process():
    code = ("import torch; from engine.ops import registry; "
            "from engine.ops.postprocess import vae_to_uint8, vae_to_uint8_ref; "
            "x = torch.rand(1, 3, 8, 8) * 2 - 1; "
            "assert registry.select('postprocess', device_type='cpu').name == 'ref'; "
            "assert torch.equal(vae_to_uint8(x, 2), vae_to_uint8_ref(x, 2)); "
            "assert not hasattr(torch.ops.synthclone, 'vae_to_uint8'); print('ok')")
    env = dict(os.environ, SYNTHCLONE_NO_EXT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_forcing_the_extension_when_absent_says_why(monkeypatch):
    import engine.ops.postprocess as pp

    monkeypatch.setattr(pp, "extension_status", lambda: (False, "engine._C is not built"))
    assert registry.select("postprocess", device_type="cpu").name == "ref"
    with pytest.raises(RuntimeError, match="cannot run here: engine._C is not built"):
        vae_to_uint8(_inputs(), 1, backend="csrc")


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(3, 8, 8), "batch dimension"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
    (torch.zeros(1, 3, 10, 8), "divisible"),
])
def test_bad_inputs_say_what_to_do(bad, msg):
    with pytest.raises(ValueError, match=msg):
        vae_to_uint8(bad, 4 if bad.shape[-2] == 10 else 1)


@pytest.mark.gpu
def test_cuda_extension_matches_reference():
    _require_extension()
    x = _inputs(shape=(2, 3, 64, 64)).cuda()
    for d in (1, 2, 4):
        got = vae_to_uint8(x, d)
        diff = (got.cpu().int() - vae_to_uint8_ref(x.cpu(), d).int()).abs()
        assert got.is_cuda and diff.max() <= 1
