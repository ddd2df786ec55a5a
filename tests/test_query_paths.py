"""The Search page's "path" mode reads server files under the folders given to `cbir ingest` only: /etc/passwd,
a symlink out of a root, `..` segments and look-alike folders are refused in one line; a file in a root is
accepted (stored or not). Real files, real links, the real database and the page through AppTest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import make_subset
from support.apptest import labelled, page, texts

from cbir.errors import PathRefused
from cbir.indexing.ingest import ingest
from cbir.indexing.sync import check_folders
from cbir.retrieval.paths import allowed_path
from cbir.storage import db, roots


@pytest.fixture(scope="module")
def photos(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ingested folder (with links planted in it), and one file ingested on its own from another folder."""
    base = tmp_path_factory.mktemp("server")
    folder = make_subset(base / "photos", {"elephant": 3, "rhino": 3})
    (base / "loose").mkdir()
    shutil.copy(sorted((folder / "rhino").iterdir())[0], base / "loose" / "lone.jpg")
    shutil.copy(base / "loose" / "lone.jpg", base / "loose" / "sibling.jpg")
    ingest([folder, base / "loose" / "lone.jpg"], "phash", progress=False)
    (folder / "passwd.jpg").symlink_to("/etc/passwd")
    (folder / "etc").symlink_to("/etc")
    (base / "photos-private").mkdir()
    shutil.copy(base / "loose" / "lone.jpg", base / "photos-private" / "secret.jpg")
    return folder


def refused(path: str | Path, says: str) -> None:
    with db.connect() as conn, pytest.raises(PathRefused) as exc:
        allowed_path(conn, str(path))
    message = str(exc.value)
    assert says in message and "\n" not in message, message


def test_outside_every_root_is_refused(photos: Path) -> None:
    refused("/etc/passwd", "refused: /etc/passwd is outside the folders given to cbir ingest")
    refused(photos.parent / "photos-private" / "secret.jpg", "outside the folders")  # a look-alike prefix
    refused(photos.parent / "loose" / "sibling.jpg", "outside the folders")  # beside a file ingested alone


def test_a_symlink_out_of_a_root_is_refused(photos: Path) -> None:
    refused(photos / "passwd.jpg", "outside the folders")
    refused(photos / "etc" / "passwd", "outside the folders")


def test_dot_dot_segments_and_relative_paths_are_refused(photos: Path) -> None:
    refused(f"{photos}/elephant/../../../../etc/passwd", "has '..' segments")
    refused(f"{photos}/elephant/../rhino/{sorted(os.listdir(photos / 'rhino'))[0]}", "has '..' segments")
    refused("elephant/image_0001.jpg", "is not an absolute path")
    refused(f"{photos}/elephant\x00/x.jpg", "NUL")


def test_inside_a_root_is_accepted(photos: Path) -> None:
    stored = sorted((photos / "elephant").iterdir())[0]
    new = photos / "rhino" / "added-after-ingest.jpg"
    shutil.copy(stored, new)
    with db.connect() as conn:
        assert allowed_path(conn, str(stored)) == stored.resolve()
        assert allowed_path(conn, str(new)) == new.resolve()  # the folder's, even if not stored yet
        assert allowed_path(conn, f"{photos}//elephant/./{stored.name}") == stored.resolve()
        lone = photos.parent / "loose" / "lone.jpg"
        assert allowed_path(conn, str(lone)) == lone.resolve()
    new.unlink()


def test_search_page_refuses_in_one_line_and_searches_inside(photos: Path) -> None:
    at = page("search")
    labelled(at.radio, "Query by").set_value("Path").run()
    box = at.text_input[0]
    box.input("/etc/passwd").run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value == "refused: /etc/passwd is outside the folders given to cbir ingest"
    assert "#1 ·" not in texts(at)
    at.text_input[0].input(str(sorted((photos / "elephant").iterdir())[0])).run()
    assert not at.exception and not at.error and "#1 ·" in texts(at)


# collection_roots as migration 060 made it, before 090 merged ingest_roots into it
OLD_COLLECTION_ROOTS = (
    "CREATE TABLE collection_roots (path text PRIMARY KEY,"
    " first_used timestamptz NOT NULL DEFAULT now(), last_used timestamptz NOT NULL DEFAULT now())"
)


def test_collections_ingested_before_roots_were_recorded_get_their_folders(photos: Path) -> None:
    """Migrations 050 and 090 on an existing collection: every stored path, not the folders around them."""
    with db.connect() as conn:
        conn.execute("DROP TABLE collection_roots")
        conn.execute(OLD_COLLECTION_ROOTS)
        conn.execute("DROP SCHEMA cbir_private CASCADE")
        conn.execute("DELETE FROM schema_migrations WHERE version IN (50, 90)")
    with db.connect() as conn:  # applies 050 and 090 again, as on a database from before them
        derived = roots.roots(conn)
        stored = sorted(str(p) for p in [*photos.glob("*/*.jpg"), photos.parent / "loose" / "lone.jpg"])
        assert [r.resolved for r in derived] == [r.path for r in derived] == stored
        assert not any(r.folder for r in derived)  # each a stored image's own path: a file
        assert allowed_path(conn, stored[0]) == Path(stored[0])
        with pytest.raises(PathRefused):
            allowed_path(conn, str(photos / "rhino" / "not-stored.jpg"))
        ingest([photos], "phash", progress=False)  # re-run: nothing to embed, the folder is a root again
        assert roots.Root(str(photos), str(photos), True) in roots.roots(conn)


def test_one_roots_table_holds_the_rows_of_both_old_ones(photos: Path) -> None:
    """Migration 090: a folder in both old tables becomes one row; a file given alone keeps its allow-list entry."""
    lone = photos.parent / "loose" / "lone.jpg"
    with db.connect() as conn:
        conn.execute("DROP TABLE collection_roots")
        conn.execute(OLD_COLLECTION_ROOTS)
        conn.execute("CREATE TABLE ingest_roots (path text PRIMARY KEY, added_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO collection_roots (path) VALUES (%s)", (str(photos),))
        conn.execute("INSERT INTO ingest_roots (path) VALUES (%s), (%s)", (str(photos), str(lone)))
        conn.execute("DELETE FROM schema_migrations WHERE version = 90")
    with db.connect() as conn:
        folder, alone = roots.Root(str(photos), str(photos), True), roots.Root(str(lone), str(lone), False)
        assert roots.roots(conn) == [alone, folder]
        assert conn.execute("SELECT to_regclass('ingest_roots')").fetchone() == (None,)
        assert allowed_path(conn, str(lone)) == lone
        refused(photos.parent / "loose" / "sibling.jpg", "outside the folders")
    assert [c.folder for c in check_folders() if c.recorded] == [str(photos)]
