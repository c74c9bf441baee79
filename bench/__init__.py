"""Benchmarks: ``python -m bench NAME [--quick]``; one module per benchmark (see common.py)."""
