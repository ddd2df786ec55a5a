"""Tags: `cbir tag add/remove/list`, the image_tags table (readable, not writable, by the SQL console's role)
and `cbir search --tag/--not-tag`, on real Caltech-101 photos (phash) in the real embedded Postgres.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support import make_subset, run_cli

from cbir.errors import BadArgument
from cbir.indexing.ingest import ingest
from cbir.retrieval import tagging
from cbir.retrieval.search import search
from cbir.storage import console, db
from cbir.storage import tags as store
from cbir.storage.neighbours import PhotoFilter

CATEGORIES = {"elephant": 12, "rhino": 12, "airplanes": 12, "dalmatian": 12}


@pytest.fixture(scope="module")
def photos(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[int]]]:
    """48 real photos under phash; category -> image ids."""
    root = make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)
    ingest([root], "phash", batch_size=16, progress=False)
    with db.connect() as conn:
        rows = conn.execute("SELECT category, array_agg(id ORDER BY id) FROM images GROUP BY category").fetchall()
    yield {c: list(ids) for c, ids in rows}
    console.reader_pool().close()
    console._reader_pool.cache_clear()


def tag_rows() -> list[tuple]:
    with db.connect() as conn:
        return conn.execute("SELECT tag, image_id, note, who FROM image_tags ORDER BY tag, image_id").fetchall()


def paths_of(ids: list[int]) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute("SELECT id, path FROM images WHERE id = ANY(%s)", (ids,)).fetchall()
    return [dict(rows)[i] for i in ids]


def test_tag_by_id_path_and_file_then_list(photos: dict[str, list[int]], tmp_path: Path) -> None:
    rhinos = photos["rhino"]
    first = run_cli("tag", "add", "horned", str(rhinos[0]), paths_of(rhinos[1:2])[0], "--note", "big ones", check=True)
    assert "tagged 2 more images 'horned'" in first.stdout
    listing = tmp_path / "refs.txt"
    listing.write_text("# the rest of the rhinos\n" + "\n".join(map(str, rhinos[1:6])) + "\n\n")
    again = run_cli("tag", "add", "horned", "--from", str(listing), check=True)
    assert "tagged 4 more images" in again.stdout  # rhinos[1] had it already
    one = json.loads(run_cli("tag", "list", "horned", "--json", check=True).stdout)
    assert [r["id"] for r in one] == rhinos[:6] and {r["category"] for r in one} == {"rhino"}
    assert {r["who"] for r in one} == {"local"} and one[0]["note"] == "big ones" and one[2]["note"] is None
    counts = json.loads(run_cli("tag", "list", "--json", check=True).stdout)
    assert [(c["tag"], c["images"]) for c in counts if c["tag"] == "horned"] == [("horned", 6)]
    assert "horned" in run_cli("tag", "list", check=True).stdout
    removed = run_cli("tag", "remove", "horned", str(rhinos[5]), check=True)
    assert "from 1 images" in removed.stdout
    assert [r[1] for r in tag_rows() if r[0] == "horned"] == rhinos[:5]
    run_cli("tag", "remove", "horned", "--all", check=True)
    assert [r for r in tag_rows() if r[0] == "horned"] == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "keep", "999999"], "1 of the 2 images given are not stored: id 999999"),
        (["add", "keep", "/no/such/photo.jpg"], "not stored: /no/such/photo.jpg"),
        (["add", "", "{first}"], "a tag name cannot be empty"),
        (["add", "   ", "{first}"], "a tag name cannot be empty"),
        (["add", "x" * 10_000, "{first}"], "a tag name is at most 64 characters (this one has 10000)"),
        (["add", "bad\ttag", "{first}"], "no control characters"),
        (["add", "keep", "{first}", "--note", "n" * 1001], "a tag's note is at most 1000 characters"),
        (["add", "keep"], "give at least one image id or path"),
        (["add", "keep", "--from", "/no/such/list.txt"], "cannot read /no/such/list.txt"),
        (["remove", "keep"], "give image ids or paths, or --all"),
        (["list", ""], "a tag name cannot be empty"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(photos: dict, args: list[str], expected: str) -> None:
    first = photos["elephant"][0]
    tagging.tag("keep", [first])
    before = tag_rows()
    if args[:3] == ["add", "keep", "999999"]:
        args = [*args, str(first)]  # a good id beside the bad one is not tagged either
    proc = run_cli("tag", *[a.replace("{first}", str(first)) for a in args])
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert tag_rows() == before


def test_search_with_tag_filters_returns_k_rows(photos: dict[str, list[int]]) -> None:
    """The filter runs in the index query: k rows when k images qualify, the nearest of them (Hamming distances
    tie, so the distances are compared, and which images they are)."""
    query = photos["dalmatian"][0]
    tagging.tag("picked", photos["airplanes"][::2] + photos["elephant"][:3])
    picked = set(store.image_ids_of(db.connect(), "picked"))
    everything = search(query, k=100, model="phash")
    nearest_picked = [h.distance for h in everything if h.id in picked][:5]
    nearest_other = [h.distance for h in everything if h.id not in picked][:8]
    common = [str(query), "-m", "phash", "--json"]
    with_tag = json.loads(run_cli("search", *common, "-k", "5", "--tag", "picked").stdout)
    assert [h["distance"] for h in with_tag] == nearest_picked and {h["id"] for h in with_tag} <= picked
    without = json.loads(run_cli("search", *common, "-k", "8", "--not-tag", "picked").stdout)
    assert [h["distance"] for h in without] == nearest_other and not {h["id"] for h in without} & picked
    # all there are, no more:
    assert len(search(query, k=50, model="phash", photo=PhotoFilter(tag="picked"))) == len(picked)
    assert search(query, k=5, model="phash", photo=PhotoFilter(tag="no-such-tag")) == []
    bad = run_cli("search", str(query), "-m", "phash", "--tag", "")
    assert bad.returncode == 2 and "a tag name cannot be empty" in bad.stderr


def test_the_sql_console_reads_tags_and_cannot_write_them(photos: dict[str, list[int]]) -> None:
    tagging.tag("sql-visible", photos["rhino"][:3], who="ana")
    result = console.run_readonly(
        "SELECT i.category, count(*) FROM images i JOIN image_tags t ON t.image_id = i.id"
        " WHERE t.tag = 'sql-visible' GROUP BY i.category"
    )
    assert result.rows == [("rhino", 3)]
    before = tag_rows()
    with psycopg.connect(console.reader_url(), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")  # even outside a read-only transaction
        for statement in (
            f"INSERT INTO image_tags (tag, image_id, who) VALUES ('x', {photos['rhino'][0]}, 'me')",
            "DELETE FROM image_tags",
            "UPDATE image_tags SET who = 'me'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert tag_rows() == before


def test_api_refuses_unknown_images_whole(photos: dict[str, list[int]]) -> None:
    before = tag_rows()
    with pytest.raises(BadArgument, match="not stored"):
        tagging.tag("whole", [photos["rhino"][0], "no/such.jpg"])
    assert tag_rows() == before
    assert tagging.tag("whole", [photos["rhino"][0], photos["rhino"][0], str(photos["rhino"][1])]) == 2
    with db.connect() as conn:
        assert store.tags_of(conn, photos["rhino"][:3])[photos["rhino"][0]][-1] == "whole"
        assert "whole" in store.names(conn)


def test_export_of_a_tag_as_csv_and_json(photos: dict[str, list[int]], tmp_path: Path) -> None:
    chosen = photos["dalmatian"][:4]
    tagging.tag("export-me", chosen)
    out = tmp_path / "sel.csv"
    run_cli("export", "--tag", "export-me", "--format", "csv", "--out", str(out), check=True)
    lines = out.read_text().splitlines()
    assert lines[0] == "id,path,paths,category,tags,taken_at,camera" and len(lines) == 5
    assert [int(line.split(",")[0]) for line in lines[1:]] == chosen
    assert [line.split(",")[1] for line in lines[1:]] == paths_of(chosen)
    table = json.loads(run_cli("export", "--tag", "export-me", "--category", "dalmatian", "--format", "json").stdout)
    assert [r["id"] for r in table] == chosen and all("export-me" in r["tags"] for r in table)
    assert {r["category"] for r in table} == {"dalmatian"} and table[0]["taken_at"] is None
    none = json.loads(run_cli("export", "--tag", "export-me", "--category", "rhino", "--format", "json").stdout)
    assert none == []
    bad = run_cli("export", "--format", "xml")
    assert bad.returncode == 2 and "unknown export format 'xml'" in bad.stderr


def test_search_page_tags_chosen_results_and_filters_by_tag(photos: dict[str, list[int]]) -> None:
    from support.apptest import labelled, page, texts

    at = page("search")
    at.radio[0].set_value("Stored image").run()
    labelled(at.selectbox, "Category").set_value("airplanes").run()
    assert not at.exception and not at.error, texts(at)
    labelled(at.multiselect, "Results to tag").set_value([1, 2, 3])
    labelled(at.text_input, "Tag").input("from-search")
    at.button[[b.label for b in at.button].index("Tag them")].click().run()
    assert not at.exception and not at.error, texts(at)
    with db.connect() as conn:
        tagged = store.images_of(conn, "from-search")
    assert len(tagged) == 3 and {t.who for t in tagged} == {"local"}
    at = page("search")
    at.radio[0].set_value("Stored image").run()
    labelled(at.selectbox, "Category").set_value("airplanes").run()
    labelled(at.selectbox, "Only tag").set_value("from-search").run()
    assert not at.exception and not at.error, texts(at)
    shown = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(shown) == 3 and {t.path for t in tagged} == {c.split("\n")[-1].strip() for c in shown}
