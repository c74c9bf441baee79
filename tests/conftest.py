"""Suite-wide settings: a project-owned cache, offline hub, the gpu marker (skipped without CUDA)."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SYNTHCLONE_SHARED_DIR") or os.path.join(os.path.dirname(ROOT), "shared")
os.environ.setdefault("SYNTHCLONE_CACHE", os.path.join(ROOT, ".cache", "synthclone"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(ROOT, ".cache", "inductor"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (runs on the accelerator machine)")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def places365_file():
    """The Places365 scene list from ../shared/data (tests only; never a run-time dependency)."""
    path = os.path.join(SHARED, "data", "places365_categories.txt")
    if not os.path.exists(path):
        pytest.fail(f"test data missing: {path} (CI keeps shared/ beside the checkout; "
                    "elsewhere set SYNTHCLONE_SHARED_DIR)")
    return path
