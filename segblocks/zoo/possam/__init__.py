"""PosSAM (VS et al., ECCV 2024): panoptic open-vocabulary segmentation with SAM and CLIP.

The authors did not release code; this is a reconstruction from the paper (design choices where it
is silent are listed in ``zoo/possam/README.md``).
"""

from segblocks.zoo.possam.build import DEFAULT, build_possam
from segblocks.zoo.possam.config import VARIANTS, PosSAMConfig, get_config
from segblocks.zoo.possam.evaluate import OpenVocabMetrics, evaluate
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.outputs import CLASSIFIERS, PosSAMOutputs, PosSAMPrediction
from segblocks.zoo.possam.predict import load_possam, predict_image, write_overlay
from segblocks.zoo.possam.predictor import PosSAMPredictor
from segblocks.zoo.possam.vocabulary import Vocabulary, encode_vocabulary, seen_flags

__all__ = [
    "CLASSIFIERS",
    "DEFAULT",
    "VARIANTS",
    "OpenVocabMetrics",
    "PosSAM",
    "PosSAMConfig",
    "PosSAMOutputs",
    "PosSAMPrediction",
    "PosSAMPredictor",
    "Vocabulary",
    "build_possam",
    "encode_vocabulary",
    "evaluate",
    "get_config",
    "load_possam",
    "predict_image",
    "seen_flags",
    "write_overlay",
]
