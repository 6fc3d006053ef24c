"""OMG-Seg's predictor: one trained model, every task, any vocabulary (Fig. 2c of the paper: inference).

The model holds the figure's blocks; the predictor holds what inference adds around them (as
segment_anything keeps ``SamPredictor`` beside ``Sam``):

* the **vocabulary**, encoded by the frozen CLIP text encoder, with the classes "in the training
  vocabulary" marked (:func:`~segblocks.zoo.omg_seg.in_training_vocabulary`);
* the **classifier**: ``"omg"`` (the trained OMG classifier alone) or ``"ensemble"`` (the official
  open-vocabulary inference: the geometric ensemble with the frozen CLIP's mask-pooled logits,
  ``p = p_omg^(1 - a) * p_clip^a``, ``a = alpha`` (0.4) on classes in the training vocabulary and
  ``beta`` (0.8) on the others);
* the **tasks**: image ``"panoptic"``, ``"instance"``, ``"semantic"``; video ``"vps"``, ``"vis"``,
  ``"vss"`` (a clip runs in windows whose queries are linked by Hungarian matching on their final
  embeddings; class and objectness scores are averaged over the windows) and ``"vos"`` (objects
  given by first-frame masks take the best-overlapping of the top objectness proposals);
  ``"interactive"`` (one location query per point or box prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segblocks.heads import GeometricEnsemble, region_logits
from segblocks.inference import (
    ClipPrediction,
    PromptPrediction,
    SegmentationPrediction,
    TubeLinker,
    assign_objects,
    clip_windows,
    object_masks,
    padded_size,
    postprocess_batch,
    postprocess_clips,
    postprocess_prompts,
    unpad_mask_logits,
)
from segblocks.structures import MaskPredictions, Prompts
from segblocks.zoo.omg_seg.config import OMGSegConfig
from segblocks.zoo.omg_seg.inputs import as_clip, as_images, as_prompt_list
from segblocks.zoo.omg_seg.tasks import (
    CLASSIFIERS,
    IMAGE_TASKS,
    TASKS,
    VIDEO_TASKS,
    LinkedClip,
    Result,
    check_classifier,
)
from segblocks.zoo.omg_seg.vocabulary import OMGVocabulary, encode_vocabulary

if TYPE_CHECKING:
    from segblocks.zoo.omg_seg.model import OMGSeg

__all__ = ["CLASSIFIERS", "IMAGE_TASKS", "TASKS", "VIDEO_TASKS", "LinkedClip", "OMGSegPredictor"]


class OMGSegPredictor:
    """Every task of one (trained) :class:`OMGSeg`, with any vocabulary.

    Args:
        model: the model (put in eval mode for inference).
        vocabulary: class names (or an :class:`OMGVocabulary`); default the training vocabulary.
        is_thing: one flag per name (default: all things).
        classifier: ``"ensemble"`` (default) or ``"omg"``.
        window: frames per window of a video (official: 5 on YouTube-VIS, 2 on VIPSeg).
        object_mask_threshold: panoptic: minimum class probability of a kept query (default: config).
        overlap_threshold: panoptic: minimum kept fraction of a query's mask (default: config).
        top_k: image instances kept (default: config; official 100).
        video_top_k: instance tubes kept per video (YouTube-VIS: 10).

    Raises:
        ValueError: on an unknown classifier, a window below one frame or a bad vocabulary.
    """

    def __init__(
        self,
        model: OMGSeg,
        *,
        vocabulary: Sequence[str] | OMGVocabulary | None = None,
        is_thing: Sequence[bool] | None = None,
        classifier: str = "ensemble",
        window: int = 2,
        object_mask_threshold: float | None = None,
        overlap_threshold: float | None = None,
        top_k: int | None = None,
        video_top_k: int = 10,
    ) -> None:
        check_classifier(classifier)
        if window < 1:
            raise ValueError(f"window: expected at least one frame a window, got {window}")
        cfg = model.config if model.config is not None else OMGSegConfig()
        self.model = model
        self.config = cfg
        self.classifier = classifier
        self.window = window
        self.ensemble = GeometricEnsemble(alpha=cfg.alpha, beta=cfg.beta)
        self.object_mask_threshold = (
            cfg.object_mask_threshold if object_mask_threshold is None else object_mask_threshold
        )
        self.overlap_threshold = cfg.overlap_threshold if overlap_threshold is None else overlap_threshold
        self.top_k = cfg.top_k if top_k is None else top_k
        self.video_top_k = video_top_k
        self.vocabulary = model.train_vocabulary
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, is_thing)

    # ------------------------------------------------------------------------------ vocabulary
    def encode_vocabulary(
        self, class_names: Sequence[str], is_thing: Sequence[bool] | None = None
    ) -> OMGVocabulary:
        """Encode class names with the frozen CLIP and mark those in the training vocabulary.

        Args:
            class_names: ``C`` class names (``"person, people"`` = synonyms of one class).
            is_thing: ``C`` flags (default: all things).

        Raises:
            ValueError: on an empty vocabulary, empty or repeated names, flags of the wrong length.
            TypeError: on a single string instead of a list of names.
        """
        return encode_vocabulary(
            self.model.clip, class_names, is_thing, training_names=self.model.train_vocabulary.names
        )

    def set_vocabulary(
        self, vocabulary: Sequence[str] | OMGVocabulary, is_thing: Sequence[bool] | None = None
    ) -> None:
        """Make ``vocabulary`` the default of :meth:`predict` (no retraining).

        Args:
            vocabulary: class names or an encoded :class:`OMGVocabulary`.
            is_thing: one flag per name (default: all things).
        """
        self.vocabulary = self._resolve(vocabulary, is_thing)

    def _resolve(
        self, vocabulary: Sequence[str] | OMGVocabulary | None, is_thing: Sequence[bool] | None
    ) -> OMGVocabulary:
        if vocabulary is None:
            return self.vocabulary
        if isinstance(vocabulary, OMGVocabulary):
            return vocabulary
        return self.encode_vocabulary(vocabulary, is_thing)

    # ------------------------------------------------------------------------------ classes
    def clip_logits(self, clip_features: dict[str, Tensor], mask_logits: Tensor, text: Tensor) -> Tensor:
        """The frozen CLIP's mask-pooled logits ``[B, Q, C]`` (a tube pools over all its frames).

        Args:
            clip_features: the CLIP maps of every frame (``[B * T, ...]``).
            mask_logits: ``[B, Q, h, w]`` or tubes ``[B, Q, T, h, w]``.
            text: ``[C, E]`` class embeddings.
        """
        masks = mask_logits > 0
        if masks.ndim == 5:  # frames stacked along H, so one pooling covers the tube
            b, q, t, h, w = masks.shape
            clip_features = {
                k: v.reshape(b, t, *v.shape[1:]).transpose(1, 2).flatten(2, 3)
                for k, v in clip_features.items()
                if k in ("res5", "clip_dense")
            }
            masks = masks.reshape(b, q, t * h, w)
        return region_logits(self.model.clip, clip_features, masks, text)

    def classify(
        self,
        predictions: MaskPredictions,
        clip_features: dict[str, Tensor],
        vocabulary: OMGVocabulary,
        classifier: str,
    ) -> Tensor:
        """``[B, Q, C + 1]`` class logits (``"omg"``) or ensemble log-probabilities (``"ensemble"``).

        Args:
            predictions: one decoder prediction (masks and OMG class logits against ``vocabulary``).
            clip_features: the frozen CLIP's maps of the same forward pass.
            vocabulary: the vocabulary (its ``seen`` flags choose alpha or beta).
            classifier: ``"omg"`` or ``"ensemble"``.
        """
        assert predictions.class_logits is not None
        if classifier == "omg":
            return predictions.class_logits.float()
        text = vocabulary.text_embeddings.to(predictions.mask_logits.device)
        clip = self.clip_logits(clip_features, predictions.mask_logits, text)
        valid = (predictions.mask_logits > 0).flatten(2).any(-1)
        return self.ensemble(predictions.class_logits, clip, vocabulary.seen.to(clip.device), valid)

    def _run(
        self,
        images: Tensor,
        vocabulary: OMGVocabulary,
        classifier: str,
        prompts: Sequence[Prompts] | None = None,
    ) -> tuple[MaskPredictions, Tensor]:
        text = vocabulary.text_embeddings.to(self.model.query_feat.weight.device)
        final, clip_features = self.model.forward_with_clip(images, prompts, text)
        return final, self.classify(final, clip_features, vocabulary, classifier)

    def _padded(self, size: tuple[int, int]) -> tuple[int, int]:
        return padded_size(*size, self.model.size_divisibility) if self.model.pad_inputs else size

    # ------------------------------------------------------------------------------ images
    @torch.no_grad()
    def segment_images(
        self, images: Tensor, tasks: Sequence[str], vocabulary: OMGVocabulary, classifier: str
    ) -> list[SegmentationPrediction]:
        """Panoptic / instance / semantic results of ``[B, 3, H, W]`` images (one forward pass).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            vocabulary: the classes to name.
            classifier: ``"omg"`` or ``"ensemble"``.
        """
        final, logits = self._run(images, vocabulary, classifier)
        return self.postprocess_images(
            final, logits, vocabulary, (int(images.shape[-2]), int(images.shape[-1])), tasks
        )

    def postprocess_images(
        self,
        predictions: MaskPredictions,
        class_logits: Tensor,
        vocabulary: OMGVocabulary,
        input_size: tuple[int, int],
        tasks: Sequence[str],
    ) -> list[SegmentationPrediction]:
        """Panoptic / instance / semantic results of one decoder prediction and its class scores.

        Args:
            predictions: the decoder's final prediction (``mask_logits [B, Q, h, w]``).
            class_logits: ``[B, Q, C + 1]`` from :meth:`classify`.
            vocabulary: the vocabulary the scores are against (its thing flags).
            input_size: ``(H, W)`` of the images given to the model (before padding).
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
        """
        return postprocess_batch(
            predictions.mask_logits,
            class_logits,
            vocabulary.is_thing,
            padded=self._padded(input_size),
            image_sizes=[input_size] * len(predictions.mask_logits),
            tasks=tasks,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            top_k=self.top_k,
        )

    @torch.no_grad()
    def segment_prompts(self, images: Tensor, prompts: Sequence[Prompts]) -> list[PromptPrediction]:
        """Interactive segmentation: one mask per point or box prompt (points first, then boxes).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            prompts: B :class:`Prompts` (points: one positive click a prompt; boxes in pixels).
        """
        text = self.model.text_embeddings
        final, _ = self.model.forward_with_clip(images, prompts, text)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        counts = [
            (0 if p.points is None else len(p.points)) + (0 if p.boxes is None else len(p.boxes))
            for p in prompts
        ]
        return postprocess_prompts(
            final.mask_logits,
            None,
            num_prompts=counts,
            padded=self._padded(size),
            image_sizes=[size] * len(images),
        )

    # ------------------------------------------------------------------------------ video
    @torch.no_grad()
    def link(
        self, frames: Tensor, vocabulary: OMGVocabulary | None = None, classifier: str | None = None
    ) -> LinkedClip:
        """Run a clip ``[T, 3, H, W]`` window by window and link the windows' queries.

        Args:
            frames: ``[T, 3, H, W]`` RGB in ``[0, 1]``.
            vocabulary: default the predictor's.
            classifier: default the predictor's.
        """
        vocab = vocabulary or self.vocabulary
        linker = TubeLinker()
        objectness: Tensor | None = None
        for s in clip_windows(int(frames.shape[0]), self.window):
            final, logits = self._run(frames[s][None], vocab, classifier or self.classifier)
            assert final.query_embeddings is not None and final.iou_scores is not None
            perm = linker.add(final.mask_logits[0], logits[0], final.query_embeddings[0])
            score = final.iou_scores[0].float().sigmoid()[perm]
            objectness = score if objectness is None else objectness + score
        masks, classes = linker.result()
        assert objectness is not None
        size = (int(frames.shape[-2]), int(frames.shape[-1]))
        windows = len(clip_windows(int(frames.shape[0]), self.window))
        return LinkedClip(masks, classes, objectness / windows, self._padded(size), size)

    def segment_video(
        self, linked: LinkedClip, tasks: Sequence[str], vocabulary: OMGVocabulary
    ) -> ClipPrediction:
        """Per-frame panoptic / semantic maps and instance tubes of a linked clip.

        Args:
            linked: from :meth:`link`.
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            vocabulary: the vocabulary the clip was linked with (its thing flags).
        """
        return postprocess_clips(
            linked.mask_logits[None],
            linked.class_logits[None],
            vocabulary.is_thing,
            padded=linked.padded,
            image_sizes=[linked.frame_size],
            tasks=tasks,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            top_k=self.video_top_k,
        )[0]

    def follow_objects(self, linked: LinkedClip, first_masks: Tensor) -> Tensor:
        """VOS: each object (a first-frame mask) takes the best-overlapping of the top objectness proposals.

        Args:
            linked: the clip's :meth:`link` result.
            first_masks: ``[K, H, W]`` bool masks of the objects in frame 0.

        Returns:
            ``[K, T, H, W]`` bool, non-overlapping.

        Raises:
            ValueError: on masks of another size than the frames, or no / empty objects.
        """
        if first_masks.ndim != 3 or tuple(first_masks.shape[-2:]) != linked.frame_size:
            raise ValueError(
                f"prompts.masks: expected [K, {linked.frame_size[0]}, {linked.frame_size[1]}] first-frame masks, "
                f"got {tuple(first_masks.shape)}"
            )
        q, t = linked.mask_logits.shape[:2]
        full = unpad_mask_logits(linked.mask_logits.flatten(0, 1), linked.padded, linked.frame_size)
        tubes = full.reshape(q, t, *linked.frame_size)
        keep = min(q, max(self.config.vos_proposals, len(first_masks)))
        top = linked.objectness.topk(keep).indices
        chosen = assign_objects(first_masks.to(tubes.device), tubes[top, 0])
        return object_masks(tubes, top[chosen.to(top.device)])

    # ------------------------------------------------------------------------------ one entry
    def predict(
        self,
        images_or_clip: Tensor | Sequence[Tensor],
        *,
        task: str = "panoptic",
        prompts: Prompts | Sequence[Prompts] | None = None,
        vocabulary: Sequence[str] | OMGVocabulary | None = None,
        is_thing: Sequence[bool] | None = None,
        classifier: str | None = None,
    ) -> Result:
        """Run one task.

        Args:
            images_or_clip: image tasks and ``"interactive"``: ``[B, 3, H, W]`` (or one ``[3, H, W]``);
                video tasks: a clip ``[T, 3, H, W]``, ``[1, T, 3, H, W]`` or a list of ``[3, H, W]``
                frames of one size. RGB in ``[0, 1]``.
            task: one of :data:`TASKS`.
            prompts: ``"interactive"``: one :class:`Prompts` per image (points: one positive click
                a prompt; boxes ``(x1, y1, x2, y2)``); ``"vos"``: one :class:`Prompts` whose ``masks``
                ``[K, H, W]`` are the objects in the first frame.
            vocabulary: class names (or an :class:`OMGVocabulary`); default the current one.
            is_thing: one flag per name of ``vocabulary``.
            classifier: ``"ensemble"`` or ``"omg"`` (default: the predictor's).

        Returns:
            image tasks: one :class:`SegmentationPrediction` per image; video tasks: one
            :class:`ClipPrediction`; ``"vos"``: ``[K, T, H, W]`` bool; ``"interactive"``: one
            :class:`PromptPrediction` per image.

        Raises:
            ValueError: on an unknown task or classifier, bad images, frames of different sizes, missing
                or bad prompts (outside the image, a box with x2 < x1), or an empty vocabulary.
            TypeError: on inputs of the wrong type.
        """
        if task not in TASKS:
            raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
        chosen = classifier or self.classifier
        check_classifier(chosen)
        vocab = self._resolve(vocabulary, is_thing)
        if task in IMAGE_TASKS:
            if prompts is not None:
                raise ValueError(f"prompts: task {task!r} takes no prompts (use task='interactive')")
            return self.segment_images(as_images(images_or_clip), (IMAGE_TASKS[task],), vocab, chosen)
        if task == "interactive":
            images = as_images(images_or_clip)
            return self.segment_prompts(images, as_prompt_list(prompts, len(images), task))
        frames = as_clip(images_or_clip)
        if task == "vos":
            given = as_prompt_list(prompts, 1, task)[0]
            if given.masks is None:
                raise ValueError(
                    "prompts: task 'vos' needs Prompts(masks=[K, H, W]) of the objects in frame 0"
                )
            return self.follow_objects(self.link(frames, vocab, chosen), given.masks)
        if prompts is not None:
            raise ValueError(f"prompts: task {task!r} takes no prompts")
        return self.segment_video(self.link(frames, vocab, chosen), (VIDEO_TASKS[task],), vocab)
