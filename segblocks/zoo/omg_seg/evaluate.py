"""One checkpoint, every task: the evaluation behind ``segblocks eval omg-seg`` and the model card's table.

On the shapes world's val split, with the full vocabulary (the training classes and the held-out
ones, known only by name) and the predictor's classifier (the frozen-CLIP ensemble by default):

* images: **PS** PQ (all classes; also over the training and the held-out classes: the
  **open-vocabulary** PQ), **IS** mask AP (things), **SS** mIoU;
* clips in linked windows: **VPS** VPQ, **VIS** AP (things), **VSS** mIoU, **VOS** J&F (the things
  visible in frame 0, followed from their first-frame masks);
* **interactive**: every segment of every val image prompted once by its centre-most click (the
  official protocol: one centre click) and once by its tight box; mean IoU over the prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch

from segblocks.data import ShapesClipExample, ShapesExample, tubes_from_frames
from segblocks.inference.targets import targets_to_panoptic, tubes_to_panoptic
from segblocks.metrics import (
    DavisJF,
    MaskAP,
    PanopticQuality,
    SemanticSegmentationMetric,
    VideoAP,
    VideoInstances,
    VideoPanopticQuality,
)
from segblocks.metrics.clicks import centremost
from segblocks.metrics.panoptic_quality import PanopticQualityResult
from segblocks.structures import InstanceResult, PanopticResult, Prompts
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor

__all__ = ["TABLE_COLUMNS", "OMGSegMetrics", "evaluate_all", "evaluate_world", "format_table"]

#: The card's columns: (field, header).
TABLE_COLUMNS = (
    ("ps_pq", "PS PQ"),
    ("is_ap", "IS AP"),
    ("ss_miou", "SS mIoU"),
    ("vps_vpq", "VPS VPQ"),
    ("vis_ap", "VIS AP"),
    ("vss_miou", "VSS mIoU"),
    ("vos_jf", "VOS J&F"),
    ("click_miou", "1-click mIoU"),
    ("box_miou", "box mIoU"),
    ("ov_pq_unseen", "OV PQ held-out"),
)


@dataclass(frozen=True)
class OMGSegMetrics:
    """Every task's number, in percent (NaN where nothing could be scored).

    Attributes:
        ps_pq: panoptic quality over every class; ps_pq_things, ps_pq_stuff: by kind.
        ov_pq_seen: PQ over the training classes; ov_pq_unseen: over the held-out classes.
        is_ap: mask AP (IoU 0.50:0.95), things. ss_miou: semantic mIoU.
        vps_vpq: video panoptic quality. vis_ap: YouTube-VIS AP, things. vss_miou: per-frame mIoU.
        vos_jf: DAVIS J&F. click_miou: 1-click mean IoU. box_miou: box-prompt mean IoU.
        num_images: val images. num_clips: val clips.
    """

    ps_pq: float
    ps_pq_things: float
    ps_pq_stuff: float
    ov_pq_seen: float
    ov_pq_unseen: float
    is_ap: float
    ss_miou: float
    vps_vpq: float
    vis_ap: float
    vss_miou: float
    vos_jf: float
    click_miou: float
    box_miou: float
    num_images: int
    num_clips: int

    def as_dict(self) -> dict[str, float]:
        """The fields as ``{name: value}``."""
        return {k: float(v) for k, v in asdict(self).items()}


def _pct(value: float) -> float:
    return 100.0 * value if value == value and value >= 0 else float("nan")


def _subset_pq(result: PanopticQualityResult, ids: Sequence[int]) -> float:
    """Mean PQ over the classes of ``ids`` that occur (panopticapi's rule: tp + fp + fn > 0)."""
    rows = [
        result.per_class[i].pq
        for i in ids
        if result.per_class[i].tp + result.per_class[i].fp + result.per_class[i].fn
    ]
    return sum(rows) / len(rows) if rows else float("nan")


def _mean(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else float("nan")


@torch.no_grad()
def evaluate_all(
    predictor: OMGSegPredictor,
    images: Iterable[ShapesExample],
    clips: Iterable[ShapesClipExample],
    *,
    device: str | torch.device = "cpu",
) -> OMGSegMetrics:
    """Evaluate every task of one model.

    Args:
        predictor: wraps the model, its vocabulary (category ids of the data must index it; its
            ``seen`` flags split the open-vocabulary PQ), classifier and window.
        images: val images (targets with category ids, semantic maps).
        clips: val clips (per-frame targets whose ids are track ids).
        device: where the inputs go.

    Returns:
        :class:`OMGSegMetrics` in percent.
    """
    model = predictor.model
    was_training = model.training
    model.eval()
    vocab = predictor.vocabulary
    categories = dict(enumerate(vocab.is_thing))
    things = [c for c, t in categories.items() if t]
    pq, ap = PanopticQuality(categories=categories), MaskAP(categories=things)
    ss = SemanticSegmentationMetric(num_classes=len(vocab))
    clicks: list[float] = []
    boxes: list[float] = []
    n_images = n_clips = 0
    try:
        for ex in images:
            image = ex.image[None].to(device)
            pred = predictor.segment_images(
                image, ("panoptic", "semantic", "instance"), vocab, predictor.classifier
            )[0]
            assert pred.panoptic is not None and pred.semantic is not None and pred.instance is not None
            pq.update(
                PanopticResult(segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments),
                targets_to_panoptic(ex.targets),
            )
            ss.update(pred.semantic.label_map.cpu(), ex.semantic)
            inst = pred.instance
            ap.update(
                InstanceResult(
                    masks=inst.masks.cpu(), labels=inst.labels.cpu(), scores=inst.scores.float().cpu()
                ),
                ex.targets,
            )
            clicks += _prompted_ious(predictor, image, ex.targets.masks, "click")
            boxes += _prompted_ious(predictor, image, ex.targets.masks, "box")
            n_images += 1
        vis, vpq = VideoAP(categories=things), VideoPanopticQuality(categories=categories)
        vss, vos = SemanticSegmentationMetric(num_classes=len(vocab)), DavisJF(void_id=None)
        for clip in clips:
            frames = clip.frames.to(device)
            tubes = tubes_from_frames(clip.targets)
            assert tubes.is_thing is not None
            linked = predictor.link(frames, vocab)
            result = predictor.segment_video(linked, ("panoptic", "semantic", "instance"), vocab)
            assert result.panoptic is not None and result.semantic is not None and result.instance is not None
            thing_tubes = tubes.masks[tubes.is_thing]
            vis.update(
                VideoInstances(
                    masks=result.instance.masks.cpu(),
                    labels=result.instance.labels.cpu(),
                    scores=result.instance.scores.float().cpu(),
                ),
                VideoInstances(masks=thing_tubes, labels=tubes.labels[tubes.is_thing]),
            )
            per_frame = []
            for m in result.panoptic.segment_maps.cpu():
                present = set(m.unique().tolist())
                per_frame.append(
                    PanopticResult(
                        segment_map=m, segments=[s for s in result.panoptic.segments if s.id in present]
                    )
                )
            truth = tubes_to_panoptic(tubes)
            vpq.update(per_frame, truth)
            for t, frame in enumerate(truth):
                label_map = torch.full_like(frame.segment_map, 255)
                for s in frame.segments:
                    label_map[frame.segment_map == s.id] = s.category_id
                vss.update(result.semantic.label_maps[t].cpu(), label_map)
            visible = thing_tubes[thing_tubes[:, 0].flatten(1).any(1)]
            if len(visible) and len(frames) >= 3:  # DAVIS skips the first and last frames
                followed = predictor.follow_objects(linked, visible[:, 0].to(device)).cpu()
                pred_ids, gt_ids = (
                    torch.zeros(followed.shape[1:], dtype=torch.int64),
                    torch.zeros(followed.shape[1:], dtype=torch.int64),
                )
                for k in range(len(visible)):
                    pred_ids[followed[k]] = k + 1
                    gt_ids[visible[k]] = k + 1
                vos.update(pred_ids, gt_ids)
            n_clips += 1
    finally:
        model.train(was_training)
    nan = float("nan")
    seen = [i for i, s in enumerate(vocab.seen.tolist()) if s]
    unseen = [i for i, s in enumerate(vocab.seen.tolist()) if not s]
    r = pq.compute() if n_images else None
    v = vpq.compute() if n_clips else None
    a = vis.compute() if n_clips else None
    return OMGSegMetrics(
        ps_pq=_pct(r.all.pq) if r else nan,
        ps_pq_things=_pct(r.things.pq) if r else nan,
        ps_pq_stuff=_pct(r.stuff.pq) if r else nan,
        ov_pq_seen=_pct(_subset_pq(r, seen)) if r else nan,
        ov_pq_unseen=_pct(_subset_pq(r, unseen)) if r else nan,
        is_ap=_pct(ap.compute().ap) if n_images and things else nan,
        ss_miou=_pct(ss.compute().miou) if n_images else nan,
        vps_vpq=_pct(v.vpq) if v else nan,
        vis_ap=_pct(a.ap) if a else nan,
        vss_miou=_pct(vss.compute().miou) if n_clips else nan,
        vos_jf=_pct(vos.compute().jf) if n_clips else nan,
        click_miou=_mean(clicks),
        box_miou=_mean(boxes),
        num_images=n_images,
        num_clips=n_clips,
    )


def _prompted_ious(
    predictor: OMGSegPredictor, image: torch.Tensor, masks: torch.Tensor, kind: str
) -> list[float]:
    """IoU of each segment's answer to its centre click (``kind="click"``) or its tight box."""
    keep = masks[masks.flatten(1).any(1)]
    if not len(keep):
        return []
    if kind == "click":
        xy = [centremost(m.numpy()) for m in keep]
        prompt = Prompts(
            points=torch.tensor([[[x + 0.5, y + 0.5]] for x, y in xy], dtype=torch.float32),
            point_labels=torch.ones(len(xy), 1, dtype=torch.int64),
        )
    else:
        boxes = []
        for m in keep:
            ys, xs = torch.nonzero(m, as_tuple=True)
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
        prompt = Prompts(boxes=torch.tensor(boxes))
    answer = predictor.segment_prompts(image, [prompt])[0].best_masks.cpu()
    inter = (answer & keep).flatten(1).sum(1).float()
    union = (answer | keep).flatten(1).sum(1).float().clamp_min(1)
    return (inter / union).tolist()


def format_table(rows: dict[str, OMGSegMetrics]) -> str:
    """A markdown table: one row per model, the :data:`TABLE_COLUMNS`.

    Args:
        rows: ``{row label: metrics}``.
    """
    head = "| | " + " | ".join(h for _, h in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    lines = [head, rule]
    for label, m in rows.items():
        values = m.as_dict()
        lines.append(f"| {label} | " + " | ".join(f"{values[f]:.1f}" for f, _ in TABLE_COLUMNS) + " |")
    return "\n".join(lines)


def evaluate_world(
    weights: str | None = None,
    *,
    val_images: int = 100,
    val_clips: int = 20,
    frames: int = 8,
    window: int = 2,
    image_size: int = 96,
    seed: int = 0,
    classifier: str = "ensemble",
    device: str | torch.device = "cpu",
) -> OMGSegMetrics:
    """Every task of one world-scale checkpoint on the shapes world's val split (the card's protocol).

    Args:
        weights: a run / checkpoint directory or ``model.safetensors`` (None: the shipped weights).
        val_images: val images (card: 100). val_clips: val clips (card: 20) of ``frames`` frames (8).
        window: frames of an inference window (2). image_size: image side (96). seed: world seed (0).
        classifier: ``"ensemble"`` or ``"omg"``.
        device: where to run.
    """
    from segblocks.data import CATEGORIES, ShapesClipDataset, ShapesDataset, ShapesWorldConfig
    from segblocks.zoo.omg_seg.predict import load_omg_seg

    model = load_omg_seg(weights, device=device)
    predictor = OMGSegPredictor(
        model,
        vocabulary=[c.name for c in CATEGORIES],
        is_thing=[c.is_thing for c in CATEGORIES],
        classifier=classifier,
        window=window,
    )
    world = ShapesWorldConfig(image_size=(image_size, image_size), seed=seed)
    images = ShapesDataset(world, split="val", length=val_images)
    clips = ShapesClipDataset(world, split="val", length=val_clips, num_frames=frames)
    return evaluate_all(
        predictor,
        (images[i] for i in range(len(images))),
        (clips[i] for i in range(len(clips))),
        device=device,
    )
