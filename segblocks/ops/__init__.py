"""Ops with a pure-PyTorch reference and a Triton GPU kernel behind one function."""

from segblocks.ops.mask_pooling import mask_pool

__all__ = ["mask_pool"]
