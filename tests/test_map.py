"""The Map at any size: marks that stand for one image or a cell of many, a legend of categories with counts,
the search-box highlight, instant placement of a query among its neighbours, and fits on a sample.

Real embedded Postgres and real Caltech-101 photos with the tiny random model (nothing here judges quality);
the mark logic is also checked on synthetic points of 200,000 images, where a browser would get cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import caltech_files
from support.apptest import figures, labelled, page, texts, values

from cbir.analysis import projection
from cbir.config import DEFAULT_MAP_SAMPLE, settings
from cbir.dashboard import charts, map_marks
from cbir.errors import ConfigError
from cbir.indexing.ingest import ingest
from cbir.storage import collection, db, projections
from cbir.storage.models import resolve_model
from cbir.storage.neighbours import Hit, nearest
from cbir.storage.projections import MapPoints

CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}


def synthetic(n: int, categories: int = 50, seed: int = 0) -> MapPoints:
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, categories, size=n).astype(np.int32)  # -1: no category
    centres = rng.uniform(-20, 20, (categories + 1, 2))
    xy = (centres[codes] + rng.standard_normal((n, 2))).astype(np.float32)
    names = [f"c{k:02d}" for k in range(categories)]
    return MapPoints(ids=np.arange(10, 10 + n, dtype=np.int64), x=xy[:, 0], y=xy[:, 1], codes=codes, names=names)


def test_few_images_are_drawn_one_mark_each_one_trace_per_category() -> None:
    points = synthetic(2_000, categories=5)
    shown = map_marks.layers(points, charts.by_category(points))
    assert [layer.name for layer in shown] == ["c00", "c01", "c02", "c03", "c04", "(no category)"]
    assert all(layer.single for layer in shown)
    assert sorted(np.concatenate([layer.members for layer in shown]).tolist()) == list(range(2_000))
    for layer in shown:
        assert (points.x[layer.members] == layer.x).all()  # a mark is its image, in place


def test_many_images_become_cells_within_the_budget_and_a_selection_gets_every_member_back() -> None:
    points = synthetic(200_000)
    colouring = charts.by_category(points)
    shown = map_marks.layers(points, colouring, budget=5_000)
    marks = sum(len(layer.x) for layer in shown)
    assert marks <= 5_000 and not any(layer.single for layer in shown)
    members = np.concatenate([layer.members for layer in shown])
    assert np.array_equal(np.sort(members), np.arange(200_000))  # each image in exactly one mark
    for layer in shown:  # a layer holds one category only, and each mark's members sit in one small cell
        assert len(set(colouring.groups[layer.members].tolist())) == 1
        rows = layer.rows([0])
        assert len(rows) == layer.counts[0] and np.ptp(points.x[rows]) < 40 / 16
    event = [{"curve_number": 3, "point_index": 0}, {"curve_number": 3, "point_index": 2}, {"curve_number": 99}]
    expected = np.sort(np.concatenate([shown[3].rows([0]), shown[3].rows([2])]))
    assert np.array_equal(map_marks.selected_rows(shown, event), expected)


def test_figure_carries_binary_coordinates_and_no_per_point_text() -> None:
    points = synthetic(50_000)
    shown = map_marks.layers(points, charts.by_category(points), budget=10_000)
    spec = json.loads(charts.map_figure(shown, query_xy=(0.0, 0.0)).to_json())
    traces = spec["data"][:-1]
    assert all(t["x"]["dtype"] == "f4" and "text" not in t for t in traces)
    assert traces[0]["name"] == f"c00 · {shown[0].images:,}"  # the legend: name and count
    assert spec["data"][-1]["name"] == "query"
    assert len(json.dumps(spec)) < 40 * 10_000 + 200_000  # bounded by marks, not images


def test_placement_is_the_inverse_distance_weighted_mean_of_the_neighbours() -> None:
    points = synthetic(100, categories=3)
    hits = [Hit(id=int(points.ids[r]), path="", category=None, distance=d) for r, d in ((5, 0.1), (7, 0.3))]
    x, y = projection.place_by_neighbours(points, hits)
    assert x == pytest.approx((points.x[5] / 0.1 + points.x[7] / 0.3) / (1 / 0.1 + 1 / 0.3), rel=1e-5)
    assert y == pytest.approx((points.y[5] / 0.1 + points.y[7] / 0.3) / (1 / 0.1 + 1 / 0.3), rel=1e-5)
    same = [Hit(id=int(points.ids[9]), path="", category=None, distance=0.0), *hits]  # the same picture
    assert projection.place_by_neighbours(points, same) == pytest.approx((points.x[9], points.y[9]), abs=1e-4)


def test_map_sample_setting() -> None:
    assert settings({}).map_sample == DEFAULT_MAP_SAMPLE
    assert settings({"CBIR_MAP_SAMPLE": "20_000"}).map_sample == 20_000
    with pytest.raises(ConfigError, match="CBIR_MAP_SAMPLE must be a positive whole number, got 'half'"):
        settings({"CBIR_MAP_SAMPLE": "half"})


@pytest.fixture(scope="module")
def mapped(cbir_home: Path, tiny_model: str) -> projections.Projection:
    files = [f for c, n in CATEGORIES.items() for f in caltech_files(c, n)]
    ingest(files, tiny_model, batch_size=8, progress=False)
    with db.connect() as conn:
        return projection.project(conn, n_neighbors=5, progress=False)


def test_points_come_back_with_category_codes_and_search_finds_paths_and_categories(mapped) -> None:
    with db.connect() as conn:
        points = projections.points(conn, mapped.id)
        ids, categories, _ = collection.model_vectors(conn, resolve_model(conn, None))
        assert np.array_equal(points.ids, ids) and points.names == sorted(CATEGORIES)
        assert [points.category(r) for r in range(len(points))] == categories
        rhinos = projections.matching(conn, mapped.id, "RHIN")
        assert np.array_equal(rhinos, ids[[c == "rhino" for c in categories]])
        assert len(projections.matching(conn, mapped.id, "image_0001")) == 3  # a path substring
        assert len(projections.matching(conn, mapped.id, "image_000_")) == 0  # _ is literal, not a wildcard
        folder_ids, folders = projections.top_folders(conn, mapped.id)
    assert np.array_equal(folder_ids, ids) and folders == categories  # Caltech: the top folder is the category


def test_map_page_lists_every_category_with_counts_and_highlights_matches(mapped) -> None:
    at = page("map")
    main = figures(at)["map"]
    assert [t["name"] for t in main["data"]] == ["airplanes · 8", "elephant · 8", "rhino · 8"]
    assert all(t["type"] == "scattergl" and len(values(t["x"])) == 8 for t in main["data"])
    at.text_input(key="map_find").input("eleph").run()
    assert not at.exception, [e.value for e in at.exception]
    main = figures(at)["map"]
    assert main["data"][-1]["name"] == "matches 'eleph' · 8" and "8 match 'eleph'" in texts(at)
    assert all(t["marker"]["opacity"] < 0.5 for t in main["data"][:-1])  # the rest dimmed


def test_map_colours_by_top_folder_and_by_duplicate_group(mapped) -> None:
    at = page("map")
    labelled(at.selectbox, "Colour by").set_value("top folder").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t["name"] for t in figures(at)["map"]["data"]] == ["airplanes · 8", "elephant · 8", "rhino · 8"]
    labelled(at.selectbox, "Colour by").set_value("duplicate group").run()
    assert not at.exception, [e.value for e in at.exception]
    names = [t["name"] for t in figures(at)["map"]["data"]]
    assert names and all(" group " in n or n.startswith("not in a group") for n in names), names
    assert sum(int(n.rsplit("· ", 1)[1]) for n in names) == 24  # every image once


def test_map_places_an_upload_among_its_neighbours_and_colours_by_distance(mapped) -> None:
    new_rhino = caltech_files("rhino", 12)[-1]  # not stored
    at = page("search")
    at.file_uploader[0].upload(new_rhino.name, new_rhino.read_bytes(), "image/jpeg")
    at.run()
    answer = at.session_state["last_answer"]
    at.switch_page("app_pages/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    traces = {t["name"]: t for t in figures(at)["map"]["data"]}
    with db.connect() as conn:
        points = projections.points(conn, mapped.id)
    expected = projection.place_by_neighbours(points, answer.hits)
    query = traces["query"]
    assert (values(query["x"])[0], values(query["y"])[0]) == pytest.approx(expected, abs=1e-4)
    assert len(values(traces["neighbours"]["x"])) == len(answer.hits) == 10
    labelled(at.selectbox, "Colour by").set_value("distance to the latest query").run()
    assert not at.exception, [e.value for e in at.exception]
    (scale,) = [t for t in figures(at)["map"]["data"] if t["name"].startswith("all images")]
    with db.connect() as conn:
        model = resolve_model(conn, None)
        nearest_id = nearest(conn, model, answer.vector, k=1)[0].id
    colours = values(scale["marker"]["color"])
    assert len(colours) == 24 and min(colours) == pytest.approx(answer.hits[0].distance, abs=1e-4)
    assert answer.hits[0].id == nearest_id


def test_a_fit_on_a_sample_places_the_other_images_by_their_neighbours(mapped) -> None:
    with db.connect() as conn:
        sampled = projection.project(conn, n_neighbors=5, progress=False, sample=12)
        points = projections.points(conn, sampled.id)
        ids, _, vectors = collection.model_vectors(conn, resolve_model(conn, None))
        assert sampled.params["fitted"] == 12 and sampled.params["placed"] == 12 and len(points) == 24
        fitted = projection.fitted_rows(24, 12)
        others = np.setdiff1d(np.arange(24), fitted)
    # each placed image sits at the weighted mean of its exact nearest fitted images' points (cosine distance)
    distance = 1 - vectors[others] @ vectors[fitted].T
    nearest_fitted = np.argsort(distance, axis=1)[:, : projection.PLACE_K]
    fitted_xy = np.column_stack([points.x[fitted], points.y[fitted]])
    expected = projection.weighted_positions(
        fitted_xy[nearest_fitted], np.take_along_axis(distance, nearest_fitted, axis=1)
    )
    assert np.allclose(np.column_stack([points.x[others], points.y[others]]), expected, atol=1e-3)
    with db.connect() as conn:
        projection.project(conn, n_neighbors=5, progress=False)  # as the fixture left it
