"""Data loading for synthclone: .beton storage (``loaders.beton``) and loader backends.

Nothing is imported here on purpose: ``import loaders`` does no work; import the submodule you
need (``from loaders.beton import BetonWriter, BetonReader, merge_betons``).
"""
