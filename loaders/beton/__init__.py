"""Streaming, crash-safe storage in FFCV's .beton format: writer, reader, merge, pack.

    from loaders.beton import BetonWriter, BetonReader, merge_betons
"""
from loaders.beton.format import BetonFormatError, EncodedImage
from loaders.beton.merge import merge_betons
from loaders.beton.reader import BetonReader, EncodedBytes
from loaders.beton.writer import BetonWriteError, BetonWriter, SampleError

__all__ = ["BetonWriter", "BetonReader", "merge_betons", "BetonFormatError", "BetonWriteError",
           "SampleError", "EncodedImage", "EncodedBytes"]
