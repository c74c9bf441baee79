"""Kernels with their references: the generation tail (``postprocess``) and domain-specific
batch norm (``dual_bn``), dispatched by a small backend registry (``registry``).

Import the submodules you need (``from engine.ops.postprocess import vae_to_uint8``); nothing
heavy (the C++ extension, Triton) is loaded before an op is first called.
"""
