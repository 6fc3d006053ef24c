"""SEEM (Zou et al., NeurIPS 2023): segment everything everywhere all at once.

Visual prompts of any kind (the visual sampler), text prompts (the frozen CLIP text encoder) and
memory prompts (the previous round's mask) in one masked-attention decoder with generic object
queries; an interactive session beside the model. Departures from the official code are listed in
``zoo/seem/README.md``.
"""

from segblocks.zoo.seem.build import DEFAULT, build_seem
from segblocks.zoo.seem.config import VARIANTS, SEEMConfig, get_config
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.outputs import ImageEncoding, SEEMOutput
from segblocks.zoo.seem.prompt_batch import PromptBatch
from segblocks.zoo.seem.session import COMPOSITIONS, SEEMSession, SessionResult
from segblocks.zoo.seem.shipped import load_seem, load_shipped_seem

__all__ = [
    "COMPOSITIONS",
    "DEFAULT",
    "SEEM",
    "VARIANTS",
    "ImageEncoding",
    "PromptBatch",
    "SEEMConfig",
    "SEEMOutput",
    "SEEMSession",
    "SessionResult",
    "build_seem",
    "get_config",
    "load_seem",
    "load_shipped_seem",
]
