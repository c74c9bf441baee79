"""Data loading for synthclone: .beton storage (``loaders.beton``) and loader backends.

Nothing is imported here on purpose: ``import loaders`` does no work; import the submodule you
need (``from loaders.beton import BetonWriter, BetonReader, merge_betons``).

Environment variables: every one the product reads is listed in ``engine/env.py`` (with its
meaning, and a test that scans this package too). ``loaders`` may not import ``engine``, so a
variable it needs is read here with ``os.environ`` and listed there.
"""
