"""OMG-Seg (Li et al., 2024): one model, one set of weights, every segmentation task.

:func:`build_omg_seg` assembles :class:`OMGSeg` from the library's blocks; :class:`OMGSegPredictor`
runs every task (image panoptic / instance / semantic, video VIS / VPS / VSS / VOS, interactive
points and boxes) with any vocabulary.
"""

from segblocks.zoo.omg_seg.build import build_omg_seg
from segblocks.zoo.omg_seg.classifier import OMGClassifier
from segblocks.zoo.omg_seg.config import VARIANTS, OMGSegConfig, get_config
from segblocks.zoo.omg_seg.model import OMGSeg
from segblocks.zoo.omg_seg.predictor import CLASSIFIERS, TASKS, LinkedClip, OMGSegPredictor
from segblocks.zoo.omg_seg.vocabulary import OMGVocabulary, encode_vocabulary, in_training_vocabulary

__all__ = [
    "CLASSIFIERS",
    "TASKS",
    "VARIANTS",
    "LinkedClip",
    "OMGClassifier",
    "OMGSeg",
    "OMGSegConfig",
    "OMGSegPredictor",
    "OMGVocabulary",
    "build_omg_seg",
    "encode_vocabulary",
    "get_config",
    "in_training_vocabulary",
]
