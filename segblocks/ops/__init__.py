"""Ops with a pure-PyTorch reference and a Triton GPU kernel behind one function.

Every op with several implementations takes ``backend=``: ``"auto"`` (Triton on CUDA when available,
else the portable fallback), an explicit name, and a :class:`BackendUnavailableError` when an explicit
backend cannot run (for example ``"triton"`` on CPU tensors without ``TRITON_INTERPRET=1``).
"""

from segblocks.ops._dispatch import BackendUnavailableError
from segblocks.ops.mask_pooling import mask_pool
from segblocks.ops.masked_attention import masked_attention, masked_attention_reference, reopen_empty_rows
from segblocks.ops.ms_deform_attn import ms_deform_attn, ms_deform_attn_reference
from segblocks.ops.point_sample import logit_uncertainty, point_sample, sample_points_by_uncertainty

__all__ = [
    "BackendUnavailableError",
    "logit_uncertainty",
    "mask_pool",
    "masked_attention",
    "masked_attention_reference",
    "ms_deform_attn",
    "ms_deform_attn_reference",
    "point_sample",
    "reopen_empty_rows",
    "sample_points_by_uncertainty",
]
