"""Backbones: frozen foundation encoders (open_clip CLIP, segment_anything SAM) and timm models.

Contract: ``forward(images[B, 3, H, W]) -> {"res2".."res5": Tensor}`` (strides 4..32),
``output_shape() -> {name: ShapeSpec}`` and ``size_divisibility``.
"""
