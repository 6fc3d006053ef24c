"""Heads that read query embeddings and mask features: masks, classes, IoU/objectness, mask pooling,
PosSAM's Local Discriminative Pooling and the open-vocabulary ensembles (geometric, MASE)."""

from segblocks.heads.class_head import LinearClassHead, OpenVocabClassHead
from segblocks.heads.ensemble import (
    EXPONENT_GRID,
    GeometricEnsemble,
    MaskAwareSelectiveEnsemble,
    best_exponents,
    check_seen_and_unseen,
    exponent_pairs,
)
from segblocks.heads.feature_adapter import MultiScaleFeatureAdapter
from segblocks.heads.iou_head import IoUHead
from segblocks.heads.ldp import LocalDiscriminativePooling
from segblocks.heads.mask_pooling import MaskPooling, mask_pool
from segblocks.heads.region_embeddings import (
    DenseCLIP,
    ensemble_region_embeddings,
    multiscale_region_embeddings,
    region_logits,
)
from segblocks.layers.mask_head import MaskHead
from segblocks.layers.mlp import MLP

__all__ = [
    "EXPONENT_GRID",
    "MLP",
    "DenseCLIP",
    "GeometricEnsemble",
    "IoUHead",
    "LinearClassHead",
    "LocalDiscriminativePooling",
    "MaskAwareSelectiveEnsemble",
    "MaskHead",
    "MaskPooling",
    "MultiScaleFeatureAdapter",
    "OpenVocabClassHead",
    "best_exponents",
    "check_seen_and_unseen",
    "ensemble_region_embeddings",
    "exponent_pairs",
    "mask_pool",
    "multiscale_region_embeddings",
    "region_logits",
]
