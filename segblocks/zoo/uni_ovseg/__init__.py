"""Uni-OVSeg (Wang et al., 2024): open-vocabulary segmentation from unpaired image-mask and image-text pairs.

The authors released stage-1 inference and one checkpoint; the stage-1 criterion, the many-to-many
matching, the mask-text stage and the adapter are reconstructed from the paper (design choices where
it is silent are listed in ``zoo/uni-ovseg/README.md``).
"""

from segblocks.zoo.uni_ovseg.build import DEFAULT, build_uni_ovseg
from segblocks.zoo.uni_ovseg.config import VARIANTS, UniOVSegConfig, get_config
from segblocks.zoo.uni_ovseg.model import UniOVSeg
from segblocks.zoo.uni_ovseg.outputs import PromptOutputs, Proposals, UniOVSegPrediction
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor

__all__ = [
    "DEFAULT",
    "VARIANTS",
    "PromptOutputs",
    "Proposals",
    "UniOVSeg",
    "UniOVSegConfig",
    "UniOVSegPrediction",
    "UniOVSegPredictor",
    "build_uni_ovseg",
    "get_config",
]
