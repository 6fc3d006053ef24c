"""Name registries: open_clip model configs, SAM image-encoder configs and bundled weights.

Three small tables make ``OpenCLIPBackbone("shapes-clip-tiny", pretrained="shapes")`` and
``SAMBackbone("shapes-sam-tiny", checkpoint="shapes")`` work without a network:

- **CLIP configs**: a model name -> an open_clip model config dict (``embed_dim``, ``vision_cfg``,
  ``text_cfg``), registered with open_clip through its own ``add_model_config`` mechanism, so
  ``open_clip.create_model(name)`` and ``open_clip.get_tokenizer(name)`` know it too. JSON files in
  ``segblocks/backbones/configs/clip/`` (open_clip's format) are registered on first use.
- **SAM configs**: a model name -> :class:`SAMEncoderConfig` (the ``ImageEncoderViT`` hyper-parameters).
  ``vit_b``, ``vit_l``, ``vit_h`` (the official ones) and ``vit_tiny`` (tests) are built in; JSON files
  in ``segblocks/backbones/configs/sam/`` (the dataclass fields) are registered on first use.
- **Weights**: ``(model name, tag)`` -> a safetensors file. Files shipped inside the package live at
  ``segblocks/backbones/weights/<model name>/<tag>.safetensors`` and are found without registration;
  :func:`register_weights` adds others (any path).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import open_clip

__all__ = [
    "SAMEncoderConfig",
    "find_weights",
    "get_sam_config",
    "list_sam_models",
    "list_weights",
    "register_clip_config",
    "register_sam_config",
    "register_weights",
    "resolve_weights",
]

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"
CLIP_CONFIG_DIR = PACKAGE_DIR / "configs" / "clip"
SAM_CONFIG_DIR = PACKAGE_DIR / "configs" / "sam"


# --------------------------------------------------------------------------------------------------
# open_clip model configs
# --------------------------------------------------------------------------------------------------

_clip_configs_scanned = False
_clip_tmp_dir: Path | None = None


def _ensure_package_clip_configs() -> None:
    """Register the package's open_clip JSON configs once (no-op when there are none).

    A relative ``text_cfg.tokenizer_kwargs.bpe_path`` names a file next to the config (the tiny
    CLIP's cut-down BPE merges); it is made absolute so open_clip's tokenizer finds it.
    """
    global _clip_configs_scanned
    if _clip_configs_scanned:
        return
    _clip_configs_scanned = True
    for path in sorted(CLIP_CONFIG_DIR.glob("*.json")) if CLIP_CONFIG_DIR.is_dir() else []:
        config = json.loads(path.read_text())
        tokenizer_kwargs = config.get("text_cfg", {}).get("tokenizer_kwargs", {})
        if "bpe_path" in tokenizer_kwargs:
            tokenizer_kwargs["bpe_path"] = str((CLIP_CONFIG_DIR / tokenizer_kwargs["bpe_path"]).resolve())
        register_clip_config(path.stem, config, overwrite=True)


def _clip_config_dir() -> Path:
    """A private directory for configs registered at run time (open_clip registers files, not dicts)."""
    global _clip_tmp_dir
    if _clip_tmp_dir is None:
        _clip_tmp_dir = Path(tempfile.mkdtemp(prefix="segblocks_clip_configs_"))
        atexit.register(shutil.rmtree, _clip_tmp_dir, True)
    return _clip_tmp_dir


def register_clip_config(name: str, config: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Register an open_clip model config under ``name`` (visible to ``open_clip.create_model``).

    Args:
        name: the model name, e.g. ``"shapes-clip-tiny"``; letters, digits, ``-``, ``_`` and ``.``.
        config: an open_clip model config with ``embed_dim``, ``vision_cfg`` and ``text_cfg`` (the
            format of open_clip's ``model_configs/*.json``).
        overwrite: replace an existing config of that name instead of raising.

    Raises:
        ValueError: on a bad name, a config missing required keys, or an existing name.
        TypeError: if ``config`` is not a mapping.
    """
    _ensure_package_clip_configs()
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"name: expected letters, digits, '-', '_' or '.', got {name!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a mapping, got {type(config).__name__}")
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise ValueError(f"config: an open_clip model config needs keys {missing} (got {sorted(config)})")
    if not overwrite and name in open_clip.list_models():
        raise ValueError(f"name: open_clip already has a model config {name!r}; pass overwrite=True")
    path = _clip_config_dir() / f"{name}.json"
    path.write_text(json.dumps(dict(config)))
    # add_model_config appends a path and rescans every known config; register each file once.
    open_clip.add_model_config(path)


def clip_model_names() -> list[str]:
    """Every open_clip model name known (open_clip's own plus registered ones)."""
    _ensure_package_clip_configs()
    return list(open_clip.list_models())


# --------------------------------------------------------------------------------------------------
# SAM image-encoder configs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SAMEncoderConfig:
    """Hyper-parameters of segment_anything's ``ImageEncoderViT``.

    Attributes:
        embed_dim: token width.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        global_attn_indexes: blocks with global attention (the others use windows).
        img_size: the native (pretraining) input size; ``pos_embed`` covers ``img_size // patch_size``
            tokens per side.
        patch_size: patch (and feature) stride.
        window_size: window of the windowed blocks.
        out_chans: channels of the neck output (the image embedding).
        mlp_ratio: MLP hidden width over ``embed_dim``.
    """

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    out_chans: int = 256
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        for f in ("embed_dim", "depth", "num_heads", "img_size", "patch_size", "out_chans"):
            value = getattr(self, f)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{f}: expected a positive int, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim: {self.embed_dim} is not divisible by num_heads={self.num_heads}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size: {self.img_size} is not divisible by patch_size={self.patch_size}")
        object.__setattr__(self, "global_attn_indexes", tuple(self.global_attn_indexes))
        bad = [i for i in self.global_attn_indexes if not 0 <= i < self.depth]
        if bad:
            raise ValueError(f"global_attn_indexes: {bad} out of range for depth={self.depth}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-friendly dict (the format of ``configs/sam/*.json``)."""
        out = asdict(self)
        out["global_attn_indexes"] = list(self.global_attn_indexes)
        return out


_SAM_CONFIGS: dict[str, SAMEncoderConfig] = {
    # Official SAM encoders (segment_anything.build_sam), all at 1024 px, patch 16, window 14.
    "vit_b": SAMEncoderConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SAMEncoderConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SAMEncoderConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    # A tiny encoder for tests (random weights): 8x8 tokens, windows of 4, one global block.
    "vit_tiny": SAMEncoderConfig(
        embed_dim=32,
        depth=2,
        num_heads=2,
        global_attn_indexes=(1,),
        img_size=128,
        window_size=4,
        out_chans=32,
    ),
}
_sam_configs_scanned = False


def _ensure_package_sam_configs() -> None:
    global _sam_configs_scanned
    if _sam_configs_scanned:
        return
    _sam_configs_scanned = True
    if SAM_CONFIG_DIR.is_dir():
        for path in sorted(SAM_CONFIG_DIR.glob("*.json")):
            register_sam_config(path.stem, json.loads(path.read_text()), overwrite=True)


def register_sam_config(
    name: str, config: SAMEncoderConfig | Mapping[str, Any], *, overwrite: bool = False
) -> None:
    """Register a SAM image-encoder config under ``name``.

    Args:
        name: the model name, e.g. ``"shapes-sam-tiny"``.
        config: a :class:`SAMEncoderConfig` or a mapping of its fields.
        overwrite: replace an existing config of that name instead of raising.

    Raises:
        ValueError: on an existing name, unknown fields or invalid values.
        TypeError: if ``config`` is neither a config nor a mapping.
    """
    _ensure_package_sam_configs()
    if not name:
        raise ValueError("name: expected a non-empty string")
    if isinstance(config, Mapping):
        known = {f.name for f in fields(SAMEncoderConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"config: unknown SAMEncoderConfig fields {unknown}; known: {sorted(known)}")
        config = SAMEncoderConfig(**config)
    if not isinstance(config, SAMEncoderConfig):
        raise TypeError(f"config: expected SAMEncoderConfig or a mapping, got {type(config).__name__}")
    if name in _SAM_CONFIGS and not overwrite:
        raise ValueError(f"name: a SAM config {name!r} is already registered; pass overwrite=True")
    _SAM_CONFIGS[name] = config


def list_sam_models() -> list[str]:
    """Names of every registered SAM image-encoder config."""
    _ensure_package_sam_configs()
    return sorted(_SAM_CONFIGS)


def get_sam_config(name: str) -> SAMEncoderConfig:
    """The config registered under ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    _ensure_package_sam_configs()
    if name not in _SAM_CONFIGS:
        raise ValueError(f"model_name: unknown SAM model {name!r}; known: {sorted(_SAM_CONFIGS)}")
    return _SAM_CONFIGS[name]


# --------------------------------------------------------------------------------------------------
# Bundled / registered weights
# --------------------------------------------------------------------------------------------------

_WEIGHTS: dict[tuple[str, str], Path] = {}


def register_weights(model_name: str, tag: str, path: str | Path, *, overwrite: bool = False) -> None:
    """Make ``tag`` name a safetensors file for ``model_name`` (``pretrained=tag`` / ``checkpoint=tag``).

    Args:
        model_name: the open_clip or SAM model name the weights belong to.
        tag: the short name users pass, e.g. ``"shapes"``.
        path: a ``.safetensors`` file with official key names.
        overwrite: replace an existing entry instead of raising.

    Raises:
        ValueError: on empty names, a non-safetensors or missing file, or an existing entry.
    """
    if not model_name or not tag:
        raise ValueError(f"model_name, tag: expected non-empty strings, got {model_name!r}, {tag!r}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path: bundled weights must be a .safetensors file, got {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    key = (model_name, tag)
    if key in _WEIGHTS and not overwrite:
        raise ValueError(f"weights for {key} are already registered; pass overwrite=True")
    _WEIGHTS[key] = path


def find_weights(model_name: str, tag: str) -> Path | None:
    """The safetensors file registered or bundled for ``(model_name, tag)``, or ``None``."""
    if (model_name, tag) in _WEIGHTS:
        return _WEIGHTS[(model_name, tag)]
    bundled = WEIGHTS_DIR / model_name / f"{tag}.safetensors"
    return bundled if bundled.is_file() else None


def resolve_weights(
    model_name: str, checkpoint: str | os.PathLike[str], *, argument: str = "checkpoint"
) -> Path:
    """The weights file ``checkpoint`` names for ``model_name``: a registered/bundled tag, else a path.

    Args:
        model_name: the registered model name (e.g. ``"shapes-sam-tiny"``).
        checkpoint: a tag (``"shapes"``) or a file path.
        argument: the caller's argument name, for the error message.

    Returns:
        The file.

    Raises:
        ValueError: when ``checkpoint`` is neither a known tag nor an existing file (the message
            lists the known tags).
    """
    path = find_weights(model_name, str(checkpoint))
    if path is not None:
        return path
    path = Path(checkpoint)
    if not path.is_file():
        tags = [tag for _, tag in list_weights(model_name)]
        raise ValueError(
            f"{argument}: {str(checkpoint)!r} is neither a file nor a known tag for {model_name!r} "
            f"(segblocks tags: {tags})"
        )
    return path


def list_weights(model_name: str | None = None) -> list[tuple[str, str]]:
    """Every known ``(model_name, tag)`` pair (registered and bundled), optionally for one model."""
    keys = set(_WEIGHTS)
    if WEIGHTS_DIR.is_dir():
        keys |= {(p.parent.name, p.stem) for p in WEIGHTS_DIR.glob("*/*.safetensors")}
    return sorted(k for k in keys if model_name is None or k[0] == model_name)


def suggest(name: str, choices: Sequence[str]) -> str:
    """A ``"; did you mean ...?"`` hint for an unknown name (empty when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {close}?" if close else ""


# The package's configs are known to open_clip as soon as segblocks.backbones is imported, so
# ``open_clip.create_model("shapes-clip-tiny")`` and ``open_clip.get_tokenizer(...)`` work directly.
_ensure_package_clip_configs()
