"""segblocks: composable, typed PyTorch blocks for Mask2Former-style segmentation.

The sub-packages follow the papers' figures: ``backbones`` -> ``decoders`` (pixel and mask decoders,
prompt encoders) -> ``heads``, with ``ops`` (GPU kernels with exact PyTorch fallbacks), ``matchers``,
``losses``, ``inference`` (post-processing), ``metrics``, ``data`` (the shapes world and real dataset
formats), ``engine`` (what every training loop shares) and ``zoo`` (assembled models).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
