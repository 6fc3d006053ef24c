"""OMG-Seg's class negatives: extra prototypes the training cross-entropy treats as wrong for every
query (the negated training names, or random directions), present in training outputs only, never
in inference; the classifier's void prototype (zero or learned); clear errors naming the argument."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segblocks.backbones.checkpoints import save_state_dict_file
from segblocks.zoo import build_omg_seg
from segblocks.zoo.omg_seg import get_config
from segblocks.zoo.omg_seg.classifier import OMGClassifier
from segblocks.zoo.omg_seg.predict import load_omg_seg, training_vocabulary
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor
from segblocks.zoo.omg_seg.shipped import build_world_model
from segblocks.zoo.omg_seg.vocabulary import NEGATIVES, negative_prototypes
from tests.zoo.test_omg_seg import NAMES, THINGS, tiny


def test_each_kind_of_negative_prototypes() -> None:
    text = F.normalize(torch.randn(5, 12), dim=-1)
    assert negative_prototypes(text, "none").shape == (0, 12)
    assert torch.allclose(negative_prototypes(text, "opposite"), -text)
    sphere = negative_prototypes(text, "sphere", count=7, seed=3)
    assert sphere.shape == (7, 12)
    assert torch.allclose(sphere.norm(dim=-1), torch.ones(7))
    assert torch.equal(sphere, negative_prototypes(text, "sphere", count=7, seed=3))  # fixed by the seed
    assert not torch.equal(sphere, negative_prototypes(text, "sphere", count=7, seed=4))
    assert set(NEGATIVES) == {"none", "opposite", "sphere"}


def test_opposite_negatives_add_wrong_columns_to_training_outputs_only() -> None:
    images = torch.rand(2, 3, 64, 64)
    plain, negated = tiny(class_negatives="none").eval(), tiny().eval()  # the world default: "opposite"
    with torch.no_grad():
        base = plain(images).class_logits
        logits = negated(images).class_logits
    assert base is not None and logits is not None
    assert logits.shape == (2, 8, 6 + 6 + 1)  # training classes, their negations, void
    # the same network: the training classes' and void's logits are unchanged, each negative's is minus its class's
    assert torch.allclose(logits[..., :6], base[..., :6], atol=1e-4)
    assert torch.allclose(logits[..., -1], base[..., -1], atol=1e-4)
    assert torch.allclose(logits[..., 6:12], -logits[..., :6], atol=1e-4)
    # inference names only the vocabulary it is given
    predictor = OMGSegPredictor(negated, vocabulary=NAMES, is_thing=THINGS, classifier="omg")
    result = predictor.predict(images, task="semantic")
    assert len(result) == 2 and result[0].semantic is not None


def test_negatives_enter_the_class_loss_and_follow_the_vocabulary() -> None:
    model = tiny(class_negatives="sphere", sphere_negatives=5)
    assert model.negative_embeddings.shape == (5, model.text_embeddings.shape[1])
    out = model(torch.rand(1, 3, 64, 64))
    assert out.class_logits is not None and out.class_logits.shape[-1] == 6 + 5 + 1
    opposite = tiny()
    assert (
        get_config("tiny").class_negatives == "opposite"
        and get_config("convnext_large").class_negatives == "none"
    )
    opposite.refresh_vocabulary()
    assert torch.allclose(opposite.negative_embeddings, -opposite.text_embeddings)


def test_a_negative_margin_lowers_only_the_negatives_training_logits() -> None:
    """``class_negative_margin`` m: each negative's training logit is scale * (cos - m); the rest is untouched."""
    images = torch.rand(2, 3, 64, 64)
    full, weak = tiny().eval(), tiny(class_negative_margin=0.25).eval()  # the same seed: the same network
    assert get_config("tiny").class_negative_margin == 0.0  # the default keeps the full negative term
    with torch.no_grad():
        base, lowered = full(images), weak(images)
    assert base.class_logits is not None and lowered.class_logits is not None
    shift = base.class_logits - lowered.class_logits
    assert torch.allclose(shift[..., 6:12], torch.full_like(shift[..., 6:12], 25.0), atol=1e-3)  # 100 * 0.25
    assert torch.allclose(shift[..., :6], torch.zeros_like(shift[..., :6]), atol=1e-4)
    assert torch.allclose(shift[..., -1], torch.zeros_like(shift[..., -1]), atol=1e-4)
    assert all(  # every supervised layer, not only the last
        torch.allclose(a.class_logits - b.class_logits, shift, atol=1e-3)  # type: ignore[operator]
        for a, b in zip(base.aux, lowered.aux)
    )
    weak.train()(images).class_logits.sum().backward()  # type: ignore[union-attr]
    assert all(p.grad is not None for p in weak.classifier.head.proj.parameters())  # it still learns
    # inference never sees the negatives, so the margin does not change a prediction
    vocab = full.text_embeddings
    with torch.no_grad():
        a = full.eval().forward_with_clip(images, text_embeddings=vocab)[0].class_logits
        b = weak.eval().forward_with_clip(images, text_embeddings=vocab)[0].class_logits
    assert a is not None and b is not None and torch.allclose(a, b, atol=1e-4)


def test_void_prototype_is_zero_or_learned() -> None:
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        zero = tiny(class_void="zero")(images).class_logits
        learned_model = tiny(class_void="learned")
        learned = learned_model(images).class_logits
    assert zero is not None and learned is not None
    assert torch.equal(zero[..., -1], torch.zeros_like(zero[..., -1]))  # the official zero prototype
    assert learned_model.classifier.head.void_embedding is not None
    assert learned[..., -1].abs().sum() > 0 and learned_model.classifier.head.void_embedding.requires_grad


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: get_config("tiny", class_negatives="antonyms"), "class_negatives"),
        (lambda: get_config("tiny", sphere_negatives=0), "sphere_negatives"),
        (lambda: get_config("tiny", class_void="none"), "class_void"),
        (lambda: get_config("tiny", class_negative_margin=-0.1), "class_negative_margin"),
        (lambda: get_config("tiny", class_negative_margin=2.5), "class_negative_margin"),
        (lambda: tiny(class_negative_margin=float("nan")), "class_negative_margin"),
        (lambda: OMGClassifier(dim=8, mask_dim=8, embed_dim=8, void="none"), "void"),
        (lambda: negative_prototypes(torch.ones(3, 4), "antonyms"), "kind"),
        (lambda: negative_prototypes(torch.ones(4), "opposite"), "text_embeddings"),
        (lambda: negative_prototypes(torch.ones(3, 4), "sphere", count=0), "count"),
    ],
)
def test_bad_negatives_name_the_argument(call: object, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call()  # type: ignore[operator]


def test_a_checkpoint_of_the_official_classifier_still_loads(tmp_path: Path) -> None:
    """Weights saved before the world default learned its void (no void embedding) load with a zero void."""
    names, flags = training_vocabulary()
    official = build_omg_seg(
        "tiny", vocabulary=names, is_thing=flags, class_void="zero", class_negatives="none"
    )
    path = save_state_dict_file(official.state_dict(), tmp_path / "model.safetensors")
    loaded = load_omg_seg(path)
    assert loaded.classifier.head.void_embedding is None and loaded.class_negatives == "none"
    assert build_world_model().classifier.head.void_embedding is not None  # the world default
