"""Streaming, crash-safe storage in FFCV's .beton format: writer, reader, merge, pack, export.

    from loaders.beton import BetonWriter, BetonReader, merge_betons, FileInfo

The names below are imported on first use (PEP 562), so importing a light submodule
(``loaders.beton.pack_config``, ``loaders.beton.schema``) does not import FFCV.
"""
import importlib

_EXPORTS = {
    "BetonFormatError": "loaders.beton.format", "EncodedImage": "loaders.beton.format",
    "BetonLockedError": "loaders.beton.lock",
    "MergeError": "loaders.beton.merge", "merge_betons": "loaders.beton.merge",
    "BetonReader": "loaders.beton.reader", "EncodedBytes": "loaders.beton.reader",
    "ClassEntry": "loaders.beton.schema", "FileInfo": "loaders.beton.schema",
    "BetonExistsError": "loaders.beton.writer", "BetonWriteError": "loaders.beton.writer",
    "BetonWriter": "loaders.beton.writer", "SampleError": "loaders.beton.writer",
}
__all__ = ["BetonWriter", "BetonReader", "merge_betons", "FileInfo", "ClassEntry",
           "BetonFormatError", "BetonWriteError", "BetonExistsError", "BetonLockedError",
           "MergeError", "SampleError", "EncodedImage", "EncodedBytes"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'loaders.beton' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
