"""Heads that read query embeddings and mask features: masks, classes, IoU/objectness, mask pooling."""

from segblocks.heads.class_head import LinearClassHead, OpenVocabClassHead
from segblocks.heads.iou_head import IoUHead
from segblocks.heads.mask_head import MaskHead
from segblocks.heads.mask_pooling import MaskPooling, mask_pool
from segblocks.heads.mlp import MLP

__all__ = ["MLP", "IoUHead", "LinearClassHead", "MaskHead", "MaskPooling", "OpenVocabClassHead", "mask_pool"]
