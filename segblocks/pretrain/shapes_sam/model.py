"""The tiny SAM of the shapes world: segment_anything's own ``Sam`` classes at a small size.

The image encoder is ``ImageEncoderViT`` built from the registered ``shapes-sam-tiny`` config
(``segblocks/backbones/configs/sam/shapes-sam-tiny.json``) through the same
:func:`~segblocks.backbones.sam_backbone.build_sam_image_encoder` that builds the official encoders;
the prompt encoder and mask decoder (``PromptEncoder``, ``MaskDecoder`` with a ``TwoWayTransformer``)
follow ``segment_anything.build_sam`` with narrower widths (:class:`ShapesSamDecoderConfig`).
Weights are stored as one safetensors file with the whole-``Sam`` key names (``image_encoder.*``,
``prompt_encoder.*``, ``mask_decoder.*``), in float16 to stay small; loading upcasts to float32.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import Tensor

from segblocks.backbones.checkpoints import load_state_dict_file, load_weights, save_state_dict_file
from segblocks.backbones.registry import SAMEncoderConfig, get_sam_config, resolve_weights
from segblocks.backbones.sam_backbone import build_sam_image_encoder

__all__ = [
    "SHAPES_SAM_MODEL",
    "ShapesSamDecoderConfig",
    "build_shapes_sam",
    "decode_prompts",
    "init_pos_embed_sincos",
    "save_shapes_sam",
]

logger = logging.getLogger(__name__)

#: The registered encoder name of the tiny SAM (``SAMBackbone(SHAPES_SAM_MODEL, checkpoint="shapes")``).
SHAPES_SAM_MODEL = "shapes-sam-tiny"
_STORE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class ShapesSamDecoderConfig:
    """Widths of the prompt encoder and mask decoder (``segment_anything.build_sam`` uses 256/2048/8).

    The transformer width is the encoder's ``out_chans`` (the decoder reads the image embedding
    directly), so it is not a field here.

    Attributes:
        depth: blocks of the ``TwoWayTransformer`` (SAM: 2).
        mlp_dim: MLP width of its blocks (SAM: 2048).
        num_heads: attention heads (SAM: 8).
        iou_head_hidden_dim: width of the IoU-prediction MLP (SAM: 256).
        iou_head_depth: layers of the IoU-prediction MLP (SAM: 3).
        mask_in_chans: channels of the dense (mask) prompt downscaler (SAM: 16).
        num_multimask_outputs: masks returned for an ambiguous prompt (SAM: 3).
    """

    depth: int = 2
    mlp_dim: int = 512
    num_heads: int = 4
    iou_head_hidden_dim: int = 128
    iou_head_depth: int = 3
    mask_in_chans: int = 16
    num_multimask_outputs: int = 3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _build_sam(encoder_config: SAMEncoderConfig, decoder_config: ShapesSamDecoderConfig) -> Sam:
    width = encoder_config.out_chans
    if width % decoder_config.num_heads or width % 8:
        raise ValueError(
            f"decoder_config: the decoder width (the encoder's out_chans={width}) must be divisible by "
            f"num_heads={decoder_config.num_heads} and by 8"
        )
    grid = encoder_config.img_size // encoder_config.patch_size
    prompt_encoder = PromptEncoder(
        embed_dim=width,
        image_embedding_size=(grid, grid),
        input_image_size=(encoder_config.img_size, encoder_config.img_size),
        mask_in_chans=decoder_config.mask_in_chans,
    )
    transformer = TwoWayTransformer(
        depth=decoder_config.depth,
        embedding_dim=width,
        mlp_dim=decoder_config.mlp_dim,
        num_heads=decoder_config.num_heads,
    )
    mask_decoder = MaskDecoder(
        transformer_dim=width,
        transformer=transformer,
        num_multimask_outputs=decoder_config.num_multimask_outputs,
        iou_head_depth=decoder_config.iou_head_depth,
        iou_head_hidden_dim=decoder_config.iou_head_hidden_dim,
    )
    return Sam(
        image_encoder=build_sam_image_encoder(encoder_config),
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
    )


def build_shapes_sam(
    checkpoint: str | os.PathLike[str] | None = "shapes",
    *,
    model_name: str = SHAPES_SAM_MODEL,
    decoder_config: ShapesSamDecoderConfig | None = None,
) -> Sam:
    """The whole tiny ``Sam`` (image encoder, prompt encoder, mask decoder), optionally loaded.

    The model takes images of ``img_size`` (128 for ``shapes-sam-tiny``) and prompts in that pixel
    frame, exactly as an official ``Sam`` takes 1024-px inputs: ``Sam.forward`` with a list of
    dicts, or its three parts called directly. Points are ``(x, y)`` pixel indices; boxes are
    ``(x_min, y_min, x_max, y_max)`` of the first and last pixel (SAM adds half a pixel itself).

    Args:
        checkpoint: ``"shapes"`` (the weights shipped with segblocks), another tag registered for
            ``model_name``, a whole-``Sam`` checkpoint file (safetensors or a PyTorch state dict),
            or ``None`` for a random init. Float16 files are upcast to float32.
        model_name: the registered SAM encoder config to build.
        decoder_config: prompt-encoder and mask-decoder widths (default: those of the shipped file).

    Returns:
        A float32 ``segment_anything.modeling.Sam`` in eval mode.

    Raises:
        TypeError: on a ``checkpoint`` that is not a path, a tag or ``None``, or a bad
            ``decoder_config``.
        ValueError: on an unknown ``model_name``, tag or file, or a checkpoint whose keys or shapes
            do not match.

    Examples:
        >>> from segblocks.pretrain.shapes_sam import build_shapes_sam
        >>> sam = build_shapes_sam(None)            # random init; "shapes" loads the shipped file
        >>> sam.image_encoder.img_size, sam.prompt_encoder.image_embedding_size
        (128, (16, 16))
    """
    if not isinstance(model_name, str):
        raise TypeError(f"model_name: expected a string, got {type(model_name).__name__}")
    if decoder_config is None:
        decoder_config = ShapesSamDecoderConfig()
    if not isinstance(decoder_config, ShapesSamDecoderConfig):
        raise TypeError(
            f"decoder_config: expected ShapesSamDecoderConfig or None, got {type(decoder_config).__name__}"
        )
    if checkpoint is not None and not isinstance(checkpoint, str | os.PathLike):
        raise TypeError(f"checkpoint: expected a path, a tag or None, got {type(checkpoint).__name__}")
    sam = _build_sam(get_sam_config(model_name), decoder_config)
    if checkpoint is not None:
        path = resolve_weights(model_name, checkpoint)
        state = {k: v.float() for k, v in load_state_dict_file(path).items()}
        load_weights(sam, state, source=str(path), strict=True)
    return sam.eval()


def save_shapes_sam(sam: Sam, path: str | os.PathLike[str], *, dtype: str = "float16") -> Path:
    """Write ``sam``'s whole state dict (official key names) as one safetensors file.

    Args:
        sam: the model.
        path: the ``.safetensors`` file to write (parent folders are created).
        dtype: ``"float16"`` (half the size; :func:`build_shapes_sam` upcasts) or ``"float32"``.

    Returns:
        The path written.

    Raises:
        TypeError: if ``sam`` is not a ``Sam``.
        ValueError: on a path not ending in ``.safetensors`` or an unknown ``dtype``.
    """
    if not isinstance(sam, Sam):
        raise TypeError(f"sam: expected a segment_anything Sam, got {type(sam).__name__}")
    if dtype not in _STORE_DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(_STORE_DTYPES)}, got {dtype!r}")
    # pixel_mean / pixel_std are non-persistent buffers in Sam, so they are not in the state dict.
    state = sam.state_dict()
    written = save_state_dict_file(
        state, path, dtype=_STORE_DTYPES[dtype], metadata={"format": "pt", "model": SHAPES_SAM_MODEL}
    )
    logger.info("wrote %s (%d tensors, %s)", written, len(state), dtype)
    return written


def decode_prompts(
    sam: Sam,
    image_embedding: Tensor,
    *,
    points: tuple[Tensor, Tensor] | None = None,
    boxes: Tensor | None = None,
    multimask_output: bool,
    upsample: bool = True,
) -> tuple[Tensor, Tensor]:
    """Masks for ``K`` prompts on one image: the prompt encoder, the mask decoder, upsampling.

    The low-resolution logits (4x the embedding grid) are resized bilinearly to the input size, as
    ``Sam.postprocess_masks`` does for an unpadded input of ``img_size``, unless ``upsample=False``.

    Args:
        sam: the model.
        image_embedding: ``[1, C, h, w]`` one image's embedding (``sam.image_encoder`` output).
        points: ``(coords [K, n, 2], labels [K, n])`` in the input frame, or ``None``.
        boxes: ``[K, 4]`` ``(x_min, y_min, x_max, y_max)``, or ``None``.
        multimask_output: three masks per prompt (ambiguous prompts) or one.
        upsample: resize the logits to the input size (else keep the decoder's ``4h x 4w``).

    Returns:
        ``(mask logits [K, M, H, W], predicted IoU [K, M])`` with ``M`` = 3 or 1 and ``H = W`` the
        encoder's ``img_size`` (``4h`` without upsampling).

    Raises:
        ValueError: if ``image_embedding`` is not ``[1, C, h, w]`` or no prompt is given.
    """
    if image_embedding.ndim != 4 or image_embedding.shape[0] != 1:
        raise ValueError(
            f"image_embedding: expected [1, C, h, w] (one image), got {tuple(image_embedding.shape)}"
        )
    if points is None and boxes is None:
        raise ValueError("points, boxes: expected at least one of them")
    sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=None)
    low_res, iou = sam.mask_decoder(
        image_embeddings=image_embedding,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask_output,
    )
    if not upsample:
        return low_res, iou
    size = sam.image_encoder.img_size
    return F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False), iou


def init_pos_embed_sincos(sam: Sam, *, temperature: float = 10000.0) -> None:
    """Fill the image encoder's ``pos_embed`` with fixed 2D sine-cosine embeddings (MAE's).

    ``ImageEncoderViT`` initialises ``pos_embed`` to zeros because SAM starts from an MAE-pretrained
    ViT, whose position embeddings are 2D sine-cosine. Trained from scratch, a zero ``pos_embed``
    leaves the encoder (relative positions only) without absolute position, and the decoder learns
    to segment every thing whatever the prompt; starting from the MAE embedding avoids that. The
    embedding stays trainable, as in SAM.

    Args:
        sam: the model; its encoder must use absolute positions.
        temperature: the frequency base (MAE: 10000).

    Raises:
        ValueError: if the encoder has no ``pos_embed`` or its width is not a multiple of 4.
    """
    pos_embed = sam.image_encoder.pos_embed
    if pos_embed is None:
        raise ValueError("sam: the image encoder has no absolute position embedding (use_abs_pos=False)")
    _, h, w, dim = pos_embed.shape
    if dim % 4:
        raise ValueError(f"sam: the encoder width {dim} must be a multiple of 4 for 2D sine-cosine")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    out_x = xs.reshape(-1, 1) * omega[None]
    out_y = ys.reshape(-1, 1) * omega[None]
    table = torch.cat([out_x.sin(), out_x.cos(), out_y.sin(), out_y.cos()], dim=1)  # [h * w, dim]
    with torch.no_grad():
        pos_embed.copy_(table.reshape(1, h, w, dim).to(pos_embed.dtype))
