"""CBIR_PRECISION: the opt-in bfloat16 and int8 modes load through the user's path and stay close to float32.

The tiny random model's vectors say nothing about retrieval quality; these tests check the mechanics
(mode applied, unit vectors, small deviation, clear error for a bad value).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support import caltech_files

from cbir.embedders.hf import HuggingFaceEmbedder
from cbir.errors import CbirError


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in caltech_files("elephant", 4) + caltech_files("rhino", 4)]


def embed(monkeypatch: pytest.MonkeyPatch, model: str, images: list[Image.Image], precision: str):
    monkeypatch.setenv("CBIR_PRECISION", precision)
    embedder = HuggingFaceEmbedder(model)
    return embedder, embedder.embed(images)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_precision_stays_close_to_float32(monkeypatch, tiny_model: str, images, precision: str) -> None:
    _, reference = embed(monkeypatch, tiny_model, images, "float32")
    embedder, vectors = embed(monkeypatch, tiny_model, images, precision)
    assert embedder.info()["precision"] == precision
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert not np.array_equal(vectors, reference)  # the mode really changed the arithmetic
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.99


def test_int8_quantizes_linear_layers(monkeypatch, tiny_model: str, images) -> None:
    embedder, _ = embed(monkeypatch, tiny_model, images[:1], "int8")
    kinds = {type(m).__module__ for m in embedder.model.modules()}
    assert any("quantized" in k for k in kinds)


def test_unknown_precision_is_a_clear_error(monkeypatch, tiny_model: str) -> None:
    monkeypatch.setenv("CBIR_PRECISION", "fp8")
    with pytest.raises(CbirError, match="CBIR_PRECISION must be one of float32, bfloat16, int8"):
        HuggingFaceEmbedder(tiny_model)
