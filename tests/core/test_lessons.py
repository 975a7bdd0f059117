"""Each playground lesson sets up what it promises, and the outputs show the effect."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.core.conv import run_pipeline
from cnnviz.core.images import load_image
from cnnviz.core.lessons import LESSONS, lesson, playground_request

PHOTO = load_image(__import__("pathlib").Path(__file__).resolve().parents[2] / "resources/samples/photo.png").pixels


def run(key):
    return run_pipeline(PHOTO, playground_request(lesson(key)))


def test_every_lesson_has_text_and_a_target():
    assert len(LESSONS) >= 13
    for les in LESSONS:
        assert les.target in ("playground", "inspector")
        sentences = [x for x in __import__("re").split(r"[.!?](?:\s|$)", les.text) if x.strip()]
        assert 2 <= len(sentences) <= 3, (les.key, len(sentences))
        if les.target == "playground":
            playground_request(les)  # builds without error


def test_stride_halves_the_shape():
    r = run("stride")
    assert r.conv.shape[-2:] == (256, 256)  # 512 → 256
    assert "/ 2⌋" in r.conv_shape.formula_h


def test_padding_same_keeps_the_size():
    assert run("padding").conv.shape[-2:] == PHOTO.shape[:2]


def test_relu_zeroes_negatives():
    r = run("relu")
    assert r.conv.min() < 0 and r.activation.min() == 0


def test_pool_halves_and_keeps_maxima():
    r = run("max-vs-avg-pool")
    assert r.pool.shape[-2:] == (256, 256)
    assert r.pool.max() == pytest.approx(r.activation.max())


def test_flip_negates_sobel():
    flipped = run("correlation-vs-convolution")
    plain = run("relu")  # same kernel and padding, activation on
    np.testing.assert_allclose(flipped.conv, -plain.conv, atol=1e-6)


def test_edges_lesson_has_two_maps_and_magnitude():
    r = run("edges-vertical-horizontal")
    assert r.conv.shape[0] == 2 and r.magnitude is not None


def test_bank_lesson_has_twelve_maps():
    assert run("oriented-bank").conv.shape[0] == 12


def test_unknown_lesson():
    with pytest.raises(KeyError, match="no lesson"):
        lesson("nope")
