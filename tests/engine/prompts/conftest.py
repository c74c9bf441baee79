"""Classes and an isolated cache for the prompt tests."""
import pytest

from engine.catalog import ClassInfo, imagenet_class, resolve_imagenet


def by_name(name: str) -> ClassInfo:
    return imagenet_class(resolve_imagenet(name))


@pytest.fixture(scope="session")
def papillon():
    return by_name("papillon")


@pytest.fixture(scope="session")
def robin():
    return by_name("robin")


@pytest.fixture(scope="session")
def crane_bird():
    return imagenet_class("n02012849")  # crane, the bird (ImageNet also has n03126707, the machine)


@pytest.fixture
def freeform():
    """A free-form custom class: no wnid, no definition, no hypernym."""
    return ClassInfo(index=0, wnid=None, lemmas=("caracal",))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SYNTHCLONE_CACHE", str(path))
    return path
