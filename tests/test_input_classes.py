"""Classes of bad input, each tried on every public entry point it applies to.

A new entry point joins a class by adding one line to that class's list, and gets its checks:
repeated class names, non-bool flags, images outside the image contract, non-finite scores,
sizes that are not positive, non-integer counts and sizes in a JSON file beyond any real image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from segblocks._validation import (
    check_bool_flags,
    check_images,
    check_positive_int,
    check_size,
    check_vocabulary,
)
from segblocks.backbones import TimmBackbone
from segblocks.backbones.text_prompts import parse_vocabulary
from segblocks.data.formats import (
    CategoryRecord,
    DatasetFormatError,
    InstanceRecord,
    group_youtube_vis_results,
    read_coco_instances,
    read_coco_results,
    write_coco_results,
)
from segblocks.evaluation import evaluate_semantic
from segblocks.heads import LinearClassHead, MaskPooling
from segblocks.inference.padding import pad_masks, unpad_mask_logits
from segblocks.metrics import DavisJF, MaskAP, PanopticQuality, VideoAP, VideoInstances, VideoPanopticQuality
from segblocks.ops import mask_pool
from segblocks.structures import InstanceResult, Prompts, Targets
from segblocks.zoo import build_mask2former
from segblocks.zoo.possam.vocabulary import encode_vocabulary


def _mask2former(**classes: Any) -> object:
    from tests.zoo.test_mask2former import TINY, TinyBackbone

    return build_mask2former(TinyBackbone(), variant="world", **TINY, **classes)


class _FakeClip:
    def encode_text(self, names: list[str]) -> torch.Tensor:
        return torch.ones(len(names), 4)


# ---------------------------------------------------------------- vocabularies: no class may vanish

VOCABULARY_ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "check_vocabulary": lambda v: check_vocabulary("class_names", v),
    "parse_vocabulary (CLIP text prompts)": parse_vocabulary,
    "encode_vocabulary (PosSAM)": lambda v: encode_vocabulary(_FakeClip(), v),
    "evaluate_semantic class_names": lambda v: evaluate_semantic(".", ".", num_classes=2, class_names=v),
    "build_mask2former vocabulary": lambda v: _mask2former(vocabulary=v),
    "build_mask2former class_names": lambda v: _mask2former(num_classes=len(v), class_names=v),
}


@pytest.mark.parametrize("entry", VOCABULARY_ENTRY_POINTS)
def test_repeated_class_names_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="'cat' appears twice"):
        VOCABULARY_ENTRY_POINTS[entry](["cat", " cat"])


@pytest.mark.parametrize("entry", VOCABULARY_ENTRY_POINTS)
def test_a_bare_string_is_not_a_vocabulary(entry: str) -> None:
    with pytest.raises(TypeError, match="string"):
        VOCABULARY_ENTRY_POINTS[entry]("cat")


def test_repeated_category_names_in_a_json_file(tmp_path: Path) -> None:
    data = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat", "isthing": 1}, {"id": 2, "name": "cat", "isthing": 1}],
    }
    (tmp_path / "i.json").write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match="'cat' appears twice"):
        read_coco_instances(tmp_path, json_file=tmp_path / "i.json")


# ---------------------------------------------------------------- thing flags must be real bools

FLAG_ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "check_bool_flags": lambda f: check_bool_flags("is_thing", f, 2),
    "CategoryRecord": lambda f: [CategoryRecord(i, f"c{i}", t) for i, t in enumerate(f)],
    "PanopticQuality": lambda f: PanopticQuality(categories=dict(enumerate(f))),
    "VideoPanopticQuality": lambda f: VideoPanopticQuality(categories=dict(enumerate(f))),
    "encode_vocabulary (PosSAM)": lambda f: encode_vocabulary(_FakeClip(), ["a", "b"], f),
    "build_mask2former is_thing": lambda f: _mask2former(num_classes=2, is_thing=f),
}


@pytest.mark.parametrize("entry", FLAG_ENTRY_POINTS)
@pytest.mark.parametrize("flags", [["false", True], [0, 1], [None, True]])
def test_thing_flags_that_are_not_bools_are_refused(entry: str, flags: list[Any]) -> None:
    with pytest.raises(TypeError, match=r"True or False|bool"):
        FLAG_ENTRY_POINTS[entry](flags)


@pytest.mark.parametrize("entry", FLAG_ENTRY_POINTS)
def test_real_bools_are_accepted(entry: str) -> None:
    FLAG_ENTRY_POINTS[entry]([np.bool_(False), True])


def test_isthing_in_a_json_file_must_be_0_or_1(tmp_path: Path) -> None:
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat", "isthing": "false"}]}
    (tmp_path / "i.json").write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match="'isthing' should be 0 or 1"):
        read_coco_instances(tmp_path, json_file=tmp_path / "i.json")


# ---------------------------------------------------------------- images: RGB floats in [0, 1]

_BACKBONE = TimmBackbone("test_resnet").eval()
IMAGE_ENTRY_POINTS: dict[str, Callable[[torch.Tensor], object]] = {
    "check_images": lambda x: check_images("images", x),
    "TimmBackbone.forward": _BACKBONE,
    "TimmBackbone.forward (training mode, CPU)": lambda x: _BACKBONE.train()(x),
}


def _images() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("entry", IMAGE_ENTRY_POINTS)
@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (lambda x: x * 255, ValueError, "0..255 images must be divided by 255"),
        (lambda x: x.index_fill(3, torch.tensor([0]), float("nan")), ValueError, "NaN or infinity"),
        (lambda x: x.index_fill(3, torch.tensor([0]), float("inf")), ValueError, "NaN or infinity"),
        (lambda x: x - 0.5, ValueError, r"values in \[0, 1\]"),
        (lambda x: (x * 255).to(torch.uint8), TypeError, "divide uint8 images by 255"),
    ],
)
def test_images_outside_the_contract_are_refused(entry: str, bad: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        IMAGE_ENTRY_POINTS[entry](bad(_images()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_cast_at_the_entry(dtype: torch.dtype) -> None:
    images = _images()
    assert check_images("images", images.to(dtype)).dtype == torch.float32
    with torch.no_grad():
        want = _BACKBONE.eval()(images.to(dtype).float())
        got = _BACKBONE(images.to(dtype))
    assert all(torch.equal(want[k], got[k]) for k in want)


# ---------------------------------------------------------------- scores must be finite

_MASKS = torch.zeros(1, 4, 4, dtype=torch.bool)
_MASKS[0, :2] = True
SCORE_ENTRY_POINTS: dict[str, Callable[[float], object]] = {
    "MaskAP.update": lambda s: MaskAP(categories=[1]).update(
        InstanceResult(masks=_MASKS, labels=torch.tensor([1]), scores=torch.tensor([s])),
        Targets(masks=_MASKS, labels=torch.tensor([1])),
    ),
    "VideoAP.update": lambda s: VideoAP(categories=[1]).update(
        VideoInstances(masks=_MASKS[:, None], labels=torch.tensor([1]), scores=torch.tensor([s])),
        VideoInstances(masks=_MASKS[:, None], labels=torch.tensor([1])),
    ),
    "write_coco_results": lambda s: write_coco_results(
        [
            InstanceRecord(
                image_id=1,
                file_name="",
                image=None,
                masks=_MASKS.numpy(),
                category_ids=np.array([1]),
                instance_ids=np.array([0]),
                iscrowd=np.array([False]),
                scores=np.array([s]),
            )
        ],
        Path("unused.json"),
    ),
}


@pytest.mark.parametrize("entry", SCORE_ENTRY_POINTS)
@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_non_finite_scores_are_refused(entry: str, score: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"finite|non-finite"):
        SCORE_ENTRY_POINTS[entry](score)
    assert not Path("unused.json").exists()


@pytest.mark.parametrize("reader", [read_coco_results, group_youtube_vis_results])
def test_non_finite_scores_in_results_files_are_refused(reader: Any, tmp_path: Path) -> None:
    seg = {"size": [2, 2], "counts": "04"}
    entry = {
        "image_id": 1,
        "video_id": 1,
        "category_id": 1,
        "segmentation": seg,
        "segmentations": [seg],
        "score": 1,
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{**entry, "score": float("nan")}]))  # Python writes the NaN token
    with pytest.raises(DatasetFormatError, match="'score' should be a finite number"):
        reader(path)


# ---------------------------------------------------------------- sizes and counts

SIZE_ENTRY_POINTS: dict[str, Callable[[tuple[int, int]], object]] = {
    "check_size": lambda s: check_size("image_size", s),
    "unpad_mask_logits": lambda s: unpad_mask_logits(torch.zeros(1, 4, 4), (16, 16), s),
    "pad_masks": lambda s: pad_masks(torch.zeros(1, 2, 2, dtype=torch.bool), s),
}


@pytest.mark.parametrize("entry", SIZE_ENTRY_POINTS)
@pytest.mark.parametrize("size", [(-1, 8), (8, 0)])
def test_sizes_must_be_positive(entry: str, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="expected an int >= 1"):
        SIZE_ENTRY_POINTS[entry](size)


COUNT_ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "check_positive_int": lambda n: check_positive_int("num_classes", n),
    "LinearClassHead num_classes": lambda n: LinearClassHead(dim=4, num_classes=n),
    "build_mask2former num_classes": lambda n: _mask2former(num_classes=n),
    "evaluate_semantic num_classes": lambda n: evaluate_semantic(".", ".", num_classes=n),
    "DavisJF.update num_objects": lambda n: DavisJF(skip_first_last=False).update(
        np.zeros((1, 2, 2), np.int64), np.zeros((1, 2, 2), np.int64), num_objects=n
    ),
}


@pytest.mark.parametrize("entry", COUNT_ENTRY_POINTS)
@pytest.mark.parametrize("count", [2.0, "2", True])
def test_counts_must_be_ints(entry: str, count: object) -> None:
    with pytest.raises(TypeError, match="expected an int"):
        COUNT_ENTRY_POINTS[entry](count)


def test_sizes_in_json_files_are_checked_before_allocating(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 100_000, "width": 100_000}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "i.json").write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match="implausible image size 100000 x 100000"):
        read_coco_instances(tmp_path, json_file=tmp_path / "i.json")  # refused when reading the JSON
    results = [
        {
            "image_id": 1,
            "category_id": 1,
            "segmentation": {"size": [100_000, 100_000], "counts": "0"},
            "score": 1,
        }
    ]
    (tmp_path / "r.json").write_text(json.dumps(results))
    with pytest.raises(DatasetFormatError, match="implausible image size"):
        read_coco_results(tmp_path / "r.json")


# ---------------------------------------------------------------- masks: weights, not logits

POOLING_ENTRY_POINTS: dict[str, Callable[[torch.Tensor], object]] = {
    "mask_pool": lambda m: mask_pool(torch.rand(1, 4, 8, 8), m),
    "MaskPooling": lambda m: MaskPooling()(torch.rand(1, 4, 8, 8), m),
}


@pytest.mark.parametrize("entry", POOLING_ENTRY_POINTS)
def test_logits_are_not_pooled_as_masks(entry: str) -> None:
    logits = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 5
    with pytest.raises(ValueError, match="logits\\? apply sigmoid first"):
        POOLING_ENTRY_POINTS[entry](logits)
    pooled = POOLING_ENTRY_POINTS[entry](logits.sigmoid())
    assert isinstance(pooled, torch.Tensor) and bool((pooled >= 0).all() and (pooled <= 1).all())


# ---------------------------------------------------------------- prompts: finite coordinates, lists of texts

PROMPT_ENTRY_POINTS: dict[str, Callable[[float], object]] = {
    "Prompts points": lambda v: Prompts(
        points=torch.tensor([[[v, 1.0]]]), point_labels=torch.ones(1, 1, dtype=torch.int64)
    ),
    "Prompts boxes": lambda v: Prompts(boxes=torch.tensor([[0.0, 0.0, v, 4.0]])),
    "Prompts strokes": lambda v: Prompts(strokes=[torch.tensor([[0.0, 0.0], [v, 1.0]])]),
}


@pytest.mark.parametrize("entry", PROMPT_ENTRY_POINTS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_prompts_with_non_finite_coordinates_are_refused(entry: str, value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        PROMPT_ENTRY_POINTS[entry](value)


def test_a_bare_string_is_not_a_list_of_text_prompts() -> None:
    with pytest.raises(TypeError, match="texts: expected a list of strings"):
        Prompts(texts="a red star")  # type: ignore[arg-type]
    assert Prompts(texts=["a red star"]).texts == ["a red star"]
