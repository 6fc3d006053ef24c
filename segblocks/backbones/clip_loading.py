"""Building an open_clip model from a name and a ``pretrained=`` value (tag, file, bundled tag)."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import open_clip
import torch
from open_clip.convert import convert_state_dict
from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed
from torch import Tensor, nn

from segblocks.backbones.checkpoints import LoadReport, load_state_dict_file, load_weights
from segblocks.backbones.registry import clip_model_names, find_weights, list_weights, suggest

__all__ = ["create_clip_model"]

logger = logging.getLogger(__name__)

_SCHEMAS = ("hf-hub:", "local-dir:")


class _DropRandomInitWarning(logging.Filter):
    """open_clip warns "initialized randomly" before we load our own file into the model; hide that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextmanager
def _quiet_random_init() -> Iterator[None]:
    root = logging.getLogger()
    filt = _DropRandomInitWarning()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


def _prepare_state_dict(model: nn.Module, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Apply open_clip's own checkpoint conversions, in the order ``open_clip.load_checkpoint`` does."""
    state_dict = convert_state_dict(model, state_dict)
    if "positional_embedding" in state_dict and not hasattr(model, "positional_embedding"):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    for name in ("logit_scale", "logit_bias"):
        param = getattr(model, name, None)
        if name in state_dict and isinstance(param, Tensor) and param.ndim != state_dict[name].ndim:
            state_dict[name] = state_dict[name].reshape(param.shape)
    if "logit_bias" not in state_dict and getattr(model, "logit_bias", None) is not None:
        state_dict["logit_bias"] = torch.zeros_like(state_dict["logit_scale"])
    position_ids = "text.transformer.embeddings.position_ids"
    if position_ids in state_dict and position_ids not in model.state_dict():
        del state_dict[position_ids]
    resize_pos_embed(state_dict, model)
    resize_text_pos_embed(state_dict, model)
    return state_dict


def _from_file(
    model_name: str, path: Path, *, strict: bool, device: str | torch.device
) -> tuple[nn.Module, LoadReport]:
    with _quiet_random_init():
        model = open_clip.create_model(model_name, pretrained=None, pretrained_text=False)
    state_dict = _prepare_state_dict(model, load_state_dict_file(path))
    report = load_weights(model, state_dict, source=str(path), strict=strict)
    return model.to(device), report


def create_clip_model(
    model_name: str,
    pretrained: str | os.PathLike[str] | None,
    *,
    strict: bool = True,
    cache_dir: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, LoadReport]:
    """Create an open_clip CLIP model and load its weights.

    ``pretrained`` is resolved in this order: ``None`` (random init, e.g. for tests); a tag registered
    or bundled with segblocks for ``model_name`` (see :mod:`segblocks.backbones.registry`); a local
    file (``.safetensors`` or a PyTorch checkpoint, read with ``weights_only=True``, converted with
    open_clip's own helpers); an open_clip pretrained tag (downloaded by open_clip). Names with an
    ``hf-hub:`` or ``local-dir:`` prefix are handed to open_clip as they are.

    Args:
        model_name: an open_clip model name (``"convnext_large_d_320"``, ``"ViT-B-16"``, ...).
        pretrained: see above.
        strict: raise on missing/unexpected keys when loading a file.
        cache_dir: open_clip's download cache for pretrained tags.
        device: where the model is created (``"meta"`` builds it without memory, e.g. to count
            parameters).

    Returns:
        ``(model, report)``: the model (fp32, on ``device``) and what was loaded.

    Raises:
        ValueError: on an unknown model name or pretrained value, a checkpoint that does not fit, or a
            pickle that would run code.
        TypeError: on a non-string model name.
    """
    if not isinstance(model_name, str) or not model_name:
        raise TypeError(f"model_name: expected a non-empty string, got {model_name!r}")
    if model_name.startswith(_SCHEMAS):
        if pretrained is not None:
            raise ValueError(f"pretrained: must be None for {model_name!r} (the weights come with the name)")
        try:
            model = open_clip.create_model(model_name, weights_only=True, cache_dir=cache_dir, device=device)
        except pickle.UnpicklingError as err:
            raise ValueError(f"checkpoint: refusing to load a pickle that would run code ({err})") from err
        return model, LoadReport(source=model_name)
    known = clip_model_names()
    if model_name not in known:
        raise ValueError(f"model_name: unknown open_clip model {model_name!r}{suggest(model_name, known)}")
    if pretrained is None:
        with _quiet_random_init():
            model = open_clip.create_model(model_name, pretrained=None, pretrained_text=False, device=device)
        return model, LoadReport(source="random init")
    if not isinstance(pretrained, str | os.PathLike):
        raise TypeError(f"pretrained: expected a tag, a path or None, got {type(pretrained).__name__}")
    bundled = find_weights(model_name, str(pretrained))
    if bundled is not None:
        return _from_file(model_name, bundled, strict=strict, device=device)
    if Path(pretrained).is_file():
        return _from_file(model_name, Path(pretrained), strict=strict, device=device)
    tags = list(open_clip.list_pretrained_tags_by_model(model_name))
    if str(pretrained) in tags:
        try:
            model = open_clip.create_model(
                model_name, pretrained=str(pretrained), weights_only=True, cache_dir=cache_dir, device=device
            )
        except pickle.UnpicklingError as err:
            raise ValueError(f"checkpoint: refusing to load a pickle that would run code ({err})") from err
        return model, LoadReport(source=f"open_clip tag {pretrained!r}")
    ours = [tag for _, tag in list_weights(model_name)]
    raise ValueError(
        f"pretrained: {str(pretrained)!r} is neither a file nor a known tag for {model_name!r}; "
        f"open_clip tags: {tags}, segblocks tags: {ours}"
    )
