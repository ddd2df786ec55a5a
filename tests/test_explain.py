"""Why did these match: the explain API on real EfficientNet-Lite0 weights and a tiny random DINOv2, stored pictures,
and the Search page's heatmaps through AppTest on a real embedded Postgres with real Caltech-101 photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import caltech_files, make_subset
from support.apptest import labelled, page, texts

from cbir.analysis.explain import Match, explain
from cbir.embedders.hf import HuggingFaceEmbedder
from cbir.errors import BadArgument, NoSpatialFeatures
from cbir.indexing.ingest import ingest
from cbir.retrieval.search import query_picture, stored_picture
from cbir.storage import collection, db

LITE = "efficientnet-lite0"


def photo(category: str, n: int) -> Image.Image:
    return Image.open(caltech_files(category, n + 1)[n]).convert("RGB")


def elephant_on_one_half(side: str) -> Image.Image:
    """An elephant photo squeezed onto the left or right half of a plain grey 448x224 canvas."""
    canvas = Image.new("RGB", (448, 224), (128, 128, 128))
    canvas.paste(photo("elephant", 0).resize((224, 224), Image.Resampling.BICUBIC), (0 if side == "left" else 224, 0))
    return canvas


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_heat_lies_on_the_elephant(side: str) -> None:
    match = explain(LITE, elephant_on_one_half(side), photo("elephant", 1))
    assert isinstance(match, Match) and match.model == LITE
    assert match.grid_a == (7, 14)  # the whole canvas, one cell per 32 pixels
    assert match.map_a.sum() == pytest.approx(match.cosine, abs=1e-6)
    assert match.map_b.sum() == pytest.approx(match.cosine, abs=1e-6)
    positive = np.clip(match.map_a, 0, None)
    half = positive[:, :7] if side == "left" else positive[:, 7:]
    share = float(half.sum() / positive.sum())
    print(f"elephant on the {side}: {share:.3f} of the positive contribution, cosine {match.cosine:.3f}")
    assert share >= 0.8  # a uniform map gives 0.5


def test_tiny_dinov2_maps_its_patch_grid(tiny_model: str) -> None:
    square, wide = photo("rhino", 0).resize((224, 224)), photo("rhino", 1).resize((336, 224))
    match = explain(tiny_model, square, wide)
    assert match.grid_a == (16, 16) and match.grid_b == (16, 24)  # 14-pixel patches
    assert np.isfinite(match.map_a).all() and np.isfinite(match.map_b).all()
    assert match.map_a.sum() == pytest.approx(match.cosine, abs=1e-6)
    assert match.map_b.sum() == pytest.approx(match.cosine, abs=1e-6)


def test_patch_tokens_skip_register_tokens(tmp_path: Path) -> None:
    from transformers import BitImageProcessor, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_register_tokens=4,
        patch_size=14,
    )
    Dinov2WithRegistersModel(config).save_pretrained(tmp_path)
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}).save_pretrained(tmp_path)
    embedder = HuggingFaceEmbedder(str(tmp_path))
    prepared = embedder.prepare([photo("rhino", 0).resize((300, 200))], crop=False)
    assert tuple(prepared.shape) == (1, 3, 224, 336)
    features = embedder.spatial_features(prepared)
    hidden = embedder.model(pixel_values=prepared).last_hidden_state.detach().numpy()
    assert features.shape == (1, 16, 24, 32) and hidden.shape[1] == 1 + 4 + 16 * 24
    np.testing.assert_allclose(features.reshape(1, -1, 32), hidden[:, 5:], atol=1e-6)


def test_a_model_without_spatial_features_says_so_in_one_line() -> None:
    with pytest.raises(NoSpatialFeatures) as refused:
        explain("phash", photo("rhino", 0), photo("rhino", 1))
    assert isinstance(refused.value, BadArgument)
    assert "phash has no spatial features" in str(refused.value) and "\n" not in str(refused.value)


@pytest.fixture(scope="module")
def stored(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few elephants and rhinos embedded with efficientnet-lite0 and phash, from copies that tests may delete."""
    folder = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 4, "rhino": 3})
    for model in (LITE, "phash"):
        ingest([folder], model, batch_size=8, progress=False)
    return folder


def image_id(path: Path) -> int:
    with db.connection() as conn:
        return next(r.id for r in collection.images_in(conn, path.parent.name) if Path(r.path).name == path.name)


def test_stored_picture_is_full_size_then_the_thumbnail_when_the_file_is_gone(stored: Path) -> None:
    path = sorted((stored / "rhino").iterdir())[0]
    size = Image.open(path).size
    with db.connection() as conn:
        assert stored_picture(conn, image_id(path)).size == size
        assert query_picture(conn, path.read_bytes()).size == size
        assert query_picture(conn, str(path)).size == size
        moved = path.with_suffix(".moved")
        shutil.move(path, moved)
        try:
            assert max(stored_picture(conn, image_id(path)).size) == 160  # the stored thumbnail
        finally:
            shutil.move(moved, path)


def test_search_page_shows_why_an_upload_matched(stored: Path) -> None:
    new_elephant = caltech_files("elephant", 8)[-1]  # not in the collection
    at = page("search")
    labelled(at.selectbox, "Model").set_value(LITE)
    at.file_uploader[0].upload(new_elephant.name, new_elephant.read_bytes(), "image/jpeg")
    at.run()
    assert not at.exception and not at.error, texts(at)
    section = next(e for e in at.expander if e.label == "Why did these match?")
    captions = [c for image in section.image for c in image.captions]
    assert len(captions) == 2 and captions[0].startswith("query (7x") and captions[1].startswith("result 1 (7x")
    assert "Cosine of the pair" in " ".join(c.value for c in section.caption)
    labelled(section.selectbox, "Result").set_value(2)
    at.run()
    assert not at.exception and not at.error, texts(at)
    section = next(e for e in at.expander if e.label == "Why did these match?")
    assert [c for image in section.image for c in image.captions][1].startswith("result 3 (")


def test_search_page_says_in_one_line_when_a_model_has_no_heatmaps(stored: Path) -> None:
    at = page("search")
    labelled(at.selectbox, "Model").set_value("phash")
    labelled(at.radio, "Query by").set_value("Stored image")
    at.run()
    assert not at.exception and not at.error, texts(at)
    section = next(e for e in at.expander if e.label == "Why did these match?")
    assert not section.image
    assert [i.value for i in section.info] == [
        "phash has no spatial features (its vector is not pooled from image positions), "
        "so no heatmap can show why two images match"
    ]
