"""Kernels with their references: the generation tail (``postprocess``) and domain-specific
batch norm (the package ``dual_bn``), dispatched by a small backend registry (``registry``).

Import what you need (``from engine.ops.postprocess import vae_to_uint8``,
``from engine.ops.dual_bn import DualBatchNorm2d, convert_dual_bn``); nothing heavy (the C++
extension, Triton) is loaded before an op is first called.
"""
