"""tests/loaders: FFCV's compiled Loader pipelines leave numba dispatcher finalizers that raise
a harmless KeyError when garbage-collected (inside whichever test runs the GC); not ours."""
import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    ignore = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    for item in items:
        if str(item.fspath).startswith(_HERE):
            item.add_marker(ignore)
