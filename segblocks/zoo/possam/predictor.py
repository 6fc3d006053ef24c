"""PosSAM's open-vocabulary predictor (Fig. 4 of the paper): any vocabulary, four classifiers, results.

The model holds the figure's blocks; the predictor holds what inference adds around them: the
vocabulary (encoded by the frozen CLIP, cached by it), the classifier (LDP alone, frozen CLIP alone,
FC-CLIP's geometric ensemble or PosSAM's MASE), the post-processing thresholds, and the plumbing from
raw outputs to panoptic / semantic / instance results (as segment_anything keeps ``SamPredictor``
beside ``Sam``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segblocks._validation import check_ndim
from segblocks.heads import GeometricEnsemble, MaskAwareSelectiveEnsemble, region_logits
from segblocks.inference import TASKS, padded_size, postprocess_batch
from segblocks.zoo.possam.config import PosSAMConfig
from segblocks.zoo.possam.outputs import CLASSIFIERS, PosSAMOutputs, PosSAMPrediction, classify_outputs
from segblocks.zoo.possam.vocabulary import Vocabulary, encode_vocabulary

if TYPE_CHECKING:
    from segblocks.zoo.possam.model import PosSAM

__all__ = ["PosSAMPredictor"]


class PosSAMPredictor:
    """Open-vocabulary panoptic, semantic and instance segmentation with a (trained) :class:`PosSAM`.

    Thresholds and ensemble exponents default to the model's config (the paper's when it has none);
    the panoptic object threshold may differ per classifier (``config.object_mask_thresholds``, e.g.
    calibrated on training images by :func:`~segblocks.zoo.possam.calibration.calibrate_object_thresholds`).

    Args:
        model: the model (put it in eval mode for inference).
        vocabulary: class names (or a :class:`Vocabulary`) to segment; default the training vocabulary.
        is_thing: one flag per name of ``vocabulary`` (default: all things).
        classifier: the default classifier, one of :data:`~segblocks.zoo.possam.CLASSIFIERS`.
        object_mask_threshold: panoptic: minimum class probability of a kept query, for every
            classifier (default: the config's, per classifier where it has calibrated ones).
        overlap_threshold: panoptic: minimum kept fraction of a query's mask.
        top_k: instance: (query, class) pairs kept per image.

    Raises:
        ValueError: on an unknown classifier or a bad vocabulary.
    """

    def __init__(
        self,
        model: PosSAM,
        *,
        vocabulary: Sequence[str] | Vocabulary | None = None,
        is_thing: Sequence[bool] | None = None,
        classifier: str = "mase",
        object_mask_threshold: float | None = None,
        overlap_threshold: float | None = None,
        top_k: int | None = None,
    ) -> None:
        self._check_classifier(classifier)
        cfg = model.config if model.config is not None else PosSAMConfig()
        self.model = model
        self.classifier = classifier
        exponents = dict(cfg.ensemble_exponents or {})
        alpha, beta = exponents.get("mase", (cfg.alpha, cfg.beta))
        self.mase = MaskAwareSelectiveEnsemble(alpha=alpha, beta=beta, use_iou=cfg.mase_use_iou)
        alpha, beta = exponents.get("geometric", (cfg.alpha, cfg.beta))
        self.geometric = GeometricEnsemble(alpha=alpha, beta=beta)
        self.object_mask_threshold = (
            cfg.object_mask_threshold if object_mask_threshold is None else object_mask_threshold
        )
        #: Per-classifier object thresholds (an explicit ``object_mask_threshold`` overrides them).
        self.object_mask_thresholds: dict[str, float] = (
            dict(cfg.object_mask_thresholds or {}) if object_mask_threshold is None else {}
        )
        self.overlap_threshold = cfg.overlap_threshold if overlap_threshold is None else overlap_threshold
        self.top_k = cfg.top_k if top_k is None else top_k
        self.vocabulary = model.train_vocabulary
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, is_thing)

    @staticmethod
    def _check_classifier(classifier: str) -> None:
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier: expected one of {CLASSIFIERS}, got {classifier!r}")

    def object_threshold(self, classifier: str | None = None) -> float:
        """The panoptic object threshold applied to ``classifier``'s scores (default: the predictor's).

        Raises:
            ValueError: on an unknown classifier.
        """
        name = classifier or self.classifier
        self._check_classifier(name)
        return self.object_mask_thresholds.get(name, self.object_mask_threshold)

    # ------------------------------------------------------------------------------- vocabulary
    def encode_vocabulary(
        self, class_names: Sequence[str], is_thing: Sequence[bool] | None = None
    ) -> Vocabulary:
        """Encode class names with the frozen CLIP text encoder (cached) and mark the seen ones.

        Args:
            class_names: ``C`` class names (``"person, people"`` = synonyms of one class).
            is_thing: ``C`` flags (default: every class a thing).

        Returns:
            A :class:`Vocabulary` whose ``seen`` flags mark names of the training vocabulary.

        Raises:
            ValueError: on an empty vocabulary, empty names or flags of the wrong length.
            TypeError: on a single string instead of a list of names.
        """
        if isinstance(class_names, str):
            raise TypeError("vocabulary: expected a list of class names, got one string (split it first)")
        return encode_vocabulary(
            self.model.clip, class_names, is_thing, seen_names=self.model.train_vocabulary.names
        )

    def set_vocabulary(
        self, vocabulary: Sequence[str] | Vocabulary, is_thing: Sequence[bool] | None = None
    ) -> None:
        """Make ``vocabulary`` the default of :meth:`predict` (no retraining needed).

        Args:
            vocabulary: class names or an encoded :class:`Vocabulary`.
            is_thing: one flag per name (default: all things).
        """
        self.vocabulary = self._resolve(vocabulary, is_thing)

    def _resolve(
        self, vocabulary: Sequence[str] | Vocabulary | None, is_thing: Sequence[bool] | None
    ) -> Vocabulary:
        if vocabulary is None:
            return self.vocabulary
        if isinstance(vocabulary, Vocabulary):
            return vocabulary
        return self.encode_vocabulary(vocabulary, is_thing)

    # -------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def infer(self, images: Tensor, vocabulary: Sequence[str] | Vocabulary | None = None) -> PosSAMOutputs:
        """Masks and every classifier's raw logits for a batch (what :meth:`predict` post-processes).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            vocabulary: class names, a :class:`Vocabulary`, or None for the current vocabulary.

        Returns:
            :class:`PosSAMOutputs` of the final decoder layer.
        """
        vocab = self._resolve(vocabulary, None)
        model = self.model
        text = vocab.text_embeddings.to(model.query_feat.weight.device)
        final, clip_features = model.forward_with_clip(images, text)
        binary = final.mask_logits > 0
        clip_logits = region_logits(model.clip, clip_features, binary, text)
        assert final.class_logits is not None and final.iou_scores is not None
        return PosSAMOutputs(
            mask_logits=final.mask_logits,
            ldp_logits=final.class_logits.float(),
            clip_logits=clip_logits,
            iou_logits=final.iou_scores.float(),
            valid=binary.flatten(2).any(-1),
            vocabulary=vocab,
        )

    def classify(self, outputs: PosSAMOutputs, classifier: str | None = None) -> Tensor:
        """Class scores of :meth:`infer`'s outputs by one classifier.

        ``"ldp"``: LDP logits; ``"clip"``: frozen-CLIP class probabilities with LDP's void probability
        (CLIP has no void class); ``"geometric"``: FC-CLIP's fixed ensemble; ``"mase"``: MASE.

        Args:
            outputs: from :meth:`infer`.
            classifier: one of :data:`CLASSIFIERS` (default: the predictor's).

        Returns:
            ``[B, Q, C + 1]`` logits or log-probabilities (softmax gives the class probabilities).
        """
        return classify_outputs(
            outputs, classifier or self.classifier, geometric=self.geometric, mase=self.mase
        )

    def postprocess(
        self,
        outputs: PosSAMOutputs,
        class_logits: Tensor,
        *,
        input_size: tuple[int, int],
        tasks: Sequence[str] = TASKS,
        image_sizes: Sequence[tuple[int, int]] | None = None,
        classifier: str | None = None,
    ) -> list[PosSAMPrediction]:
        """Panoptic / semantic / instance results at the input resolution.

        Args:
            outputs: from :meth:`infer`.
            class_logits: ``[B, Q, C + 1]`` from :meth:`classify`.
            input_size: ``(H, W)`` of the images given to :meth:`infer` (before padding).
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            image_sizes: per image ``(h, w)`` of the valid region; default the full input size.
            classifier: the classifier that made ``class_logits`` (picks its object threshold;
                default the predictor's).

        Raises:
            ValueError: on an unknown task or classifier, or mismatched ``image_sizes``.
        """
        h, w = input_size
        model = self.model
        return postprocess_batch(
            outputs.mask_logits,
            class_logits,
            outputs.vocabulary.is_thing,
            padded=padded_size(h, w, model.size_divisibility) if model.pad_inputs else (h, w),
            image_sizes=image_sizes if image_sizes is not None else [input_size] * len(outputs.mask_logits),
            tasks=tasks,
            object_mask_threshold=self.object_threshold(classifier),
            overlap_threshold=self.overlap_threshold,
            top_k=self.top_k,
        )

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        *,
        vocabulary: Sequence[str] | Vocabulary | None = None,
        is_thing: Sequence[bool] | None = None,
        classifier: str | None = None,
        tasks: Sequence[str] = TASKS,
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[PosSAMPrediction]:
        """Open-vocabulary panoptic, semantic and instance results for any vocabulary.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            vocabulary: class names (or a :class:`Vocabulary`) to segment; default the current one.
                Category ids in the results index this list.
            is_thing: one flag per name of ``vocabulary`` (default: all things).
            classifier: ``"ldp"``, ``"clip"``, ``"geometric"`` or ``"mase"`` (default: the predictor's).
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            image_sizes: per image ``(h, w)`` of the valid region; default the full ``H x W``.

        Returns:
            One :class:`PosSAMPrediction` per image.

        Raises:
            ValueError: on an unknown classifier or task, bad images or a bad vocabulary.
        """
        self._check_classifier(classifier or self.classifier)
        check_ndim("images", images, 4, "[B, 3, H, W]")
        outputs = self.infer(images, self._resolve(vocabulary, is_thing))
        logits = self.classify(outputs, classifier)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        return self.postprocess(
            outputs, logits, input_size=size, tasks=tasks, image_sizes=image_sizes, classifier=classifier
        )
