"""Load the released stage-1 checkpoint (DerrickWang005/Uni-OVSeg.pytorch) into :class:`UniOVSeg`.

The released model is a detectron2 module with ``backbone.clip_model.*`` (the open_clip model),
``sem_seg_head.pixel_decoder.*`` (Mask2Former's MSDeformAttn pixel decoder) and
``sem_seg_head.predictor.*`` (prompt encoder, extra self-attention, 9 decoder layers of
``nn.MultiheadAttention`` sub-layers, 5 mask and 5 IoU MLPs, ``feat_embed``, random-Fourier ``pe_layer``).
:func:`official_to_segblocks` renames those keys to this model's (splitting ``in_proj_weight`` into
``q/k/v``, reshaping the prompt embeddings) and reports what has no counterpart.

The released pixel decoder differs from Mask2Former's in two parts: its input projections are biased
convolutions followed by ``LayerNorm2d``, and its deformable encoder reads a random-Fourier position
code. The paper-scale build has both (``pixel_input_norm="layer"``, ``pixel_position_encoding="fourier"``),
so every released key has a place; a model built with the shared decoder's GroupNorm / sine instead
reports those 13 keys as ``incompatible``, and a strict load refuses the checkpoint rather than
silently computing something else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from segblocks.backbones.checkpoints import load_state_dict_file
from segblocks.zoo.uni_ovseg.model import UniOVSeg

__all__ = ["OfficialLoadReport", "load_official_stage1", "official_to_segblocks"]

_PRED = "sem_seg_head.predictor."
_PIX = "sem_seg_head.pixel_decoder."
_ATTN = {"cross": "multihead_attn", "self": "self_attn"}


@dataclass
class OfficialLoadReport:
    """What a conversion did.

    Attributes:
        loaded: our keys that received a tensor.
        incompatible: keys of the released pixel decoder's input projections and position code
            when the model was built without those options (our names; not loaded).
        unexpected: official keys with no counterpart at all.
        missing: our keys the checkpoint did not provide (excluding LoRA adapter and criterion state).
    """

    loaded: list[str] = field(default_factory=list)
    incompatible: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when everything loaded and nothing was left over."""
        return not (self.incompatible or self.unexpected or self.missing)


def _attention(prefix: str, rest: str, value: Tensor, out: dict[str, Tensor]) -> bool:
    """``nn.MultiheadAttention`` keys -> our q/k/v/out projections; False if ``rest`` is not one."""
    if rest in ("in_proj_weight", "in_proj_bias"):
        kind = rest.split("_")[-1]
        for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
            out[f"{prefix}.attn.{name}.{kind}"] = part.clone()
        return True
    if rest.startswith("out_proj."):
        out[f"{prefix}.attn.{rest}"] = value
        return True
    return False


_PREDICTOR_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"pe_layer\.(.+)"), lambda m: f"mask_decoder.position_encoding.{m[1]}"),
    (re.compile(r"level_embed\.weight"), lambda m: "mask_decoder.level_embed.weight"),
    (re.compile(r"input_proj\.(\d+)\.(weight|bias)"), lambda m: f"mask_decoder.input_proj.{m[1]}.{m[2]}"),
    (re.compile(r"decoder_norm\.(weight|bias)"), lambda m: f"mask_decoder.norm.{m[1]}"),
    (re.compile(r"feat_embed\.(weight|bias)"), lambda m: f"feat_embed.{m[1]}"),
    (re.compile(r"mask_embed\.(\d+)\.(.+)"), lambda m: f"mask_decoder.mask_head.mlps.{m[1]}.{m[2]}"),
    (re.compile(r"iou_embed\.(\d+)\.(.+)"), lambda m: f"iou_heads.{m[1]}.mlp.{m[2]}"),
    (re.compile(r"transformer_ffn_layers\.(\d+)\.(.+)"), lambda m: f"mask_decoder.layers.{m[1]}.ffn.{m[2]}"),
    (re.compile(r"prompt_encoder\.(pos_emb\..+|attr_emb\.weight)"), lambda m: f"prompt_encoder.{m[1]}"),
]

_PIXEL_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"transformer\.level_embed"), lambda m: "level_embed"),
    (
        re.compile(r"transformer\.encoder\.layers\.(\d+)\.self_attn\.(.+)"),
        lambda m: f"encoder.layers.{m[1]}.attention.{m[2]}",
    ),
    (
        re.compile(r"transformer\.encoder\.layers\.(\d+)\.norm1\.(.+)"),
        lambda m: f"encoder.layers.{m[1]}.norm.{m[2]}",
    ),
    (
        re.compile(r"transformer\.encoder\.layers\.(\d+)\.(linear1|linear2)\.(.+)"),
        lambda m: f"encoder.layers.{m[1]}.ffn.{m[2]}.{m[3]}",
    ),
    (
        re.compile(r"transformer\.encoder\.layers\.(\d+)\.norm2\.(.+)"),
        lambda m: f"encoder.layers.{m[1]}.ffn.norm.{m[2]}",
    ),
    (re.compile(r"mask_features\.(weight|bias)"), lambda m: f"mask_features.{m[1]}"),
    (re.compile(r"adapter_(\d+)\.weight"), lambda m: f"lateral.{int(m[1]) - 1}.0.weight"),
    (re.compile(r"adapter_(\d+)\.norm\.(weight|bias)"), lambda m: f"lateral.{int(m[1]) - 1}.1.{m[2]}"),
    (re.compile(r"layer_(\d+)\.weight"), lambda m: f"output.{int(m[1]) - 1}.0.weight"),
    (re.compile(r"layer_(\d+)\.norm\.(weight|bias)"), lambda m: f"output.{int(m[1]) - 1}.1.{m[2]}"),
    # released: nn.Sequential(Conv2d(bias=True), LayerNorm2d) per level, coarsest first, as ours
    (re.compile(r"input_proj\.(\d+)\.0\.(weight|bias)"), lambda m: f"input_proj.{m[1]}.0.{m[2]}"),
    (re.compile(r"input_proj\.(\d+)\.1\.(weight|bias)"), lambda m: f"input_proj.{m[1]}.1.norm.{m[2]}"),
    (re.compile(r"pe_layer\.(.+)"), lambda m: f"position_encoding.{m[1]}"),
]
#: our keys of the released pixel-decoder options (``pixel_input_norm="layer"``,
#: ``pixel_position_encoding="fourier"``): incompatible with a model built without them
_RELEASED_PIXEL_OPTIONS = ("pixel_decoder.input_proj.", "pixel_decoder.position_encoding.")


def _predictor_key(rest: str, value: Tensor, out: dict[str, Tensor]) -> bool:
    m = re.fullmatch(r"transformer_(cross|self)_attention_layers\.(\d+)\.(.+)", rest)
    if m:
        layer = f"mask_decoder.layers.{m[2]}.{m[1]}_attention"
        sub = m[3]
        if sub.startswith(_ATTN[m[1]] + "."):
            return _attention(layer, sub[len(_ATTN[m[1]]) + 1 :], value, out)
        if sub.startswith("norm."):
            out[f"{layer}.{sub}"] = value
            return True
        return False
    if rest.startswith("extra_self_attention_layer."):
        sub = rest[len("extra_self_attention_layer.") :]
        if sub.startswith("self_attn."):
            return _attention("extra_self_attention", sub[len("self_attn.") :], value, out)
        if sub.startswith("norm."):
            out[f"extra_self_attention.{sub}"] = value
            return True
        return False
    m = re.fullmatch(r"prompt_encoder\.(corner_emb|point_emb|box_emb|mask_emb)", rest)
    if m:  # [1, n, C] / [1, 1, C] parameters -> [n, C] / [C]
        target = value.reshape(-1, value.shape[-1])
        out[f"prompt_encoder.{m[1]}"] = target[0] if m[1] in ("point_emb", "box_emb") else target
        return True
    for pattern, name in _PREDICTOR_RULES:
        hit = pattern.fullmatch(rest)
        if hit:
            out[name(hit)] = value
            return True
    return False


def official_to_segblocks(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], OfficialLoadReport]:
    """Rename a released stage-1 state dict to :class:`UniOVSeg`'s keys.

    Args:
        state: the checkpoint's ``model`` state dict.

    Returns:
        ``(converted state dict, report)`` (``missing`` is filled in by :func:`load_official_stage1`).
    """
    out: dict[str, Tensor] = {}
    report = OfficialLoadReport()
    for key, value in state.items():
        if key.startswith("backbone.clip_model."):
            out["clip.clip." + key[len("backbone.clip_model.") :]] = value
        elif key.startswith(_PRED):
            if not _predictor_key(key[len(_PRED) :], value, out):
                report.unexpected.append(key)
        elif key.startswith(_PIX):
            rest = key[len(_PIX) :]
            for pattern, name in _PIXEL_RULES:
                hit = pattern.fullmatch(rest)
                if hit:
                    out["pixel_decoder." + name(hit)] = value
                    break
            else:
                report.unexpected.append(key)
        elif key in ("pixel_mean", "pixel_std"):
            continue  # the CLIP backbone normalises its own input
        else:
            report.unexpected.append(key)
    return out, report


def load_official_stage1(
    model: UniOVSeg, source: str | os.PathLike[str] | Mapping[str, Tensor], *, strict: bool = True
) -> OfficialLoadReport:
    """Load the released stage-1 weights (``model_final.pth`` layout) into ``model``.

    Args:
        model: a :class:`UniOVSeg` built with the matching sizes (``build_uni_ovseg("convnext_large")``).
        source: a checkpoint file (read with ``weights_only=True``) or its state dict.
        strict: refuse a checkpoint with incompatible, unexpected or missing keys (the default;
            a model built without the released pixel-decoder options fails here and says so); False
            loads every compatible key.

    Returns:
        :class:`OfficialLoadReport`.

    Raises:
        ValueError: in strict mode on any incompatible, unexpected or missing key, and always on a
            shape mismatch.
    """
    state = load_state_dict_file(Path(source)) if isinstance(source, (str, os.PathLike)) else dict(source)
    converted, report = official_to_segblocks(state)
    own = model.state_dict()
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and own[k].shape != v.shape
    ]
    if shapes:
        raise ValueError(
            f"source: shape mismatches (was the model built with the checkpoint's sizes?): {shapes[:5]}"
        )
    cfg = model.config
    other = tuple(  # released parts this model was built without
        prefix
        for prefix, released in zip(
            _RELEASED_PIXEL_OPTIONS,
            (cfg.pixel_input_norm == "layer", cfg.pixel_position_encoding == "fourier"),
        )
        if not released
    )
    report.incompatible += [k for k in converted if k.startswith(other)]
    report.unexpected += [k for k in converted if k not in own and not k.startswith(other)]
    converted = {k: v for k, v in converted.items() if k in own and not k.startswith(other)}
    skip = ("adapter.", "prompt_encoder.content_proj.")
    report.missing = [k for k in own if k not in converted and not k.startswith(skip)]
    report.loaded = sorted(converted)
    if strict and not report.ok:
        raise ValueError(
            "source: not loadable strictly: "
            f"{len(report.incompatible)} incompatible (e.g. {report.incompatible[:3]}), "
            f"{len(report.unexpected)} unexpected (e.g. {report.unexpected[:3]}), "
            f"{len(report.missing)} missing (e.g. {report.missing[:3]}); incompatible keys need "
            "pixel_input_norm='layer' and pixel_position_encoding='fourier' (the convnext_large "
            "default); pass strict=False to load the rest"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in converted.items()}, strict=False)
    return report
