"""tests/loaders: several tests build FFCV's own ``Loader`` directly (the .beton format tests)
or leave a loader unclosed; the collector frees their numba dispatchers in whichever test runs
next, where numba's dispatcher finalizer can raise a harmless KeyError. Exactly that error is
dropped here (``loaders.ffcv_runtime.is_numba_finalizer_error``, the filter
``FFCVBackend.close()`` uses); every other unraisable exception is still reported."""
import sys

import pytest


@pytest.fixture(autouse=True)
def _drop_numba_finalizer_errors():
    from loaders.ffcv_runtime import is_numba_finalizer_error

    previous = sys.unraisablehook

    def hook(unraisable):
        if not is_numba_finalizer_error(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    yield
    sys.unraisablehook = previous
