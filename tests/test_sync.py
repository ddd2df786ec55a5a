"""`cbir sync`, `cbir remove` and `cbir relabel --from-folders` on real Caltech-101 photos copied to a temporary
folder: exactly the changes made on disk, nothing else touched, and stale maps and runs saying so.

phash embeds in milliseconds, so these tests spend their time on the database and the files, not on a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import CALTECH, caltech_files, make_subset, run_cli
from support.apptest import page, texts

from cbir.analysis import projection
from cbir.analysis.evaluate import evaluate
from cbir.indexing.categories import category_for, first_path
from cbir.indexing.ingest import display_path, ingest
from cbir.indexing.sync import check_folders
from cbir.retrieval.search import search
from cbir.storage import db, path_changes, roots, staleness
from cbir.storage.path_changes import ImageState

MODEL = "phash"
CATEGORIES = {"emu": 12, "bass": 12, "beaver": 12, "crab": 12}


def stored() -> dict[str, tuple[int, str, str | None, str]]:
    """path -> (image id, sha256, category, the image's first path) for every stored path."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT p.path, i.id, i.sha256, i.category, i.path FROM image_paths p JOIN images i ON i.id = p.image_id"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def errors(stderr: str) -> list[str]:
    """The error lines of a command's stderr (the rest is progress bars)."""
    return [line for line in stderr.splitlines() if line.startswith("cbir:")]


def on_disk(root: Path) -> set[str]:
    return {display_path(p) for p in root.rglob("*") if p.is_file()}


def invariants() -> None:
    """No image without a path or an embedding; embeddings, map points and inputs only of stored images."""
    with db.connect() as conn:
        pathless, unembedded, dangling = conn.execute(
            "SELECT (SELECT count(*) FROM images i"
            " WHERE NOT EXISTS (SELECT 1 FROM image_paths p WHERE p.image_id = i.id)),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id)),"
            " (SELECT count(*) FROM embeddings e WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.id = e.image_id))"
        ).fetchone()
    assert pathless == unembedded == dangling == 0, (pathless, unembedded, dangling)


@pytest.fixture(scope="module")
def changed(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A collection with a map and an evaluation run; then on disk: 5 deleted, 5 moved, 3 renamed, 4 added."""
    root = make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)
    ingest([root], MODEL, progress=False)
    with db.connect() as conn:
        projection.project(conn, MODEL, n_neighbors=5, progress=False)
    [run] = evaluate([MODEL], progress=False)
    before = stored()
    deleted = sorted((root / "emu").iterdir())[:5]
    moved = {p: root / "beaver" / f"from_bass_{p.name}" for p in sorted((root / "bass").iterdir())[:5]}
    renamed = {p: p.with_name(f"renamed_{p.name}") for p in sorted((root / "crab").iterdir())[:3]}
    added = [root / "ant" / src.name for src in caltech_files("ant", 4)]
    for path in deleted:
        path.unlink()
    for old, new in {**moved, **renamed}.items():
        old.rename(new)
    (root / "ant").mkdir()
    for src, dest in zip(caltech_files("ant", 4), added, strict=True):
        shutil.copy(src, dest)
    return {"root": root, "before": before, "deleted": deleted, "moved": moved, "renamed": renamed, "added": added}


@pytest.fixture(scope="module")
def synced(changed: dict) -> dict:
    """`cbir sync --dry-run`, then `cbir sync`, of the changed folder: their outputs, and the paths between."""
    dry = run_cli("sync", str(changed["root"]), "--dry-run", check=True).stdout
    after_dry = stored()
    return changed | {
        "dry": dry,
        "after_dry": after_dry,
        "out": run_cli("sync", str(changed["root"]), check=True).stdout,
    }


def test_dry_run_counts_the_changes_and_changes_nothing(synced: dict) -> None:
    dry = synced["dry"]
    assert "would add up to 4 (files whose bytes are not stored), moved 8, relabelled 5, removed 5, unchanged 35" in dry
    assert "nothing was changed (--dry-run)" in dry
    assert synced["after_dry"] == synced["before"]


def test_sync_makes_exactly_the_changes_made_on_disk(synced: dict) -> None:
    root, before = synced["root"], synced["before"]
    assert "added 4, moved 8, relabelled 5, removed 5, unchanged 35" in synced["out"], synced["out"]
    after = stored()
    assert set(after) == on_disk(root)  # every file, and nothing else
    invariants()
    for old, new in synced["moved"].items():  # the same image (id, bytes, embedding), now a beaver
        image_id, sha, _, _ = before[display_path(old)]
        assert after[display_path(new)] == (image_id, sha, "beaver", display_path(new))
    for old, new in synced["renamed"].items():
        image_id, sha, _, _ = before[display_path(old)]
        assert after[display_path(new)] == (image_id, sha, "crab", display_path(new))
    gone = {before[display_path(p)][1] for p in synced["deleted"]}
    assert not gone & {v[1] for v in after.values()}
    assert {after[display_path(p)][2] for p in synced["added"]} == {"ant"}
    unchanged = set(before) - {display_path(p) for p in [*synced["deleted"], *synced["moved"], *synced["renamed"]]}
    assert all(after[p] == before[p] for p in unchanged)

    again = run_cli("sync", str(root), check=True).stdout
    assert "added 0, moved 0, relabelled 0, removed 0, unchanged 47" in again


def test_search_never_returns_a_deleted_path(synced: dict) -> None:
    disk = on_disk(synced["root"])
    deleted = {display_path(p) for p in synced["deleted"]}
    queries = [CALTECH / "emu" / p.name for p in synced["deleted"]] + caltech_files("bass", 2)
    for query in queries:
        hits = search(query, k=40, model=MODEL)
        assert len(hits) == 40
        assert {h.path for h in hits} <= disk and not {h.path for h in hits} & deleted
    moved = [h for h in search(caltech_files("bass", 1)[0], k=47, model=MODEL) if "from_bass_" in h.path]
    assert moved and {h.category for h in moved} == {"beaver"}


def test_map_and_inspector_say_they_are_stale(synced: dict) -> None:
    stale = "This map was made before 4 images were added and 5 removed: refit it (below) or run `cbir project --model"
    assert stale in texts(page("map"))
    assert "made before 4 images were added, 5 removed and 5 relabelled: re-run `cbir eval --model phash`" in texts(
        page("inspector")
    )
    with db.connect() as conn:
        projection.project(conn, MODEL, n_neighbors=5, progress=False)
    assert "This map was made before" not in texts(page("map"))
    [run] = evaluate([MODEL], progress=False)
    assert "was made before" not in texts(page("inspector"))
    with db.connect() as conn:
        assert staleness.stale_run(conn, run["run_id"]) is None


def test_home_counts_paths_gone_per_folder(synced: dict, tmp_path: Path) -> None:
    root = synced["root"]
    victims = sorted((root / "crab").iterdir())[:2]
    for path in victims:
        shutil.move(path, tmp_path / path.name)
    try:
        [check] = [c for c in check_folders() if c.folder == display_path(root)]
        assert (check.stored, check.missing, check.recorded, check.available) == (47, 2, True, True)
        at = page("home")
        assert "stored paths no longer exist" not in texts(at)  # checked on demand only
        next(b for b in at.button if b.label == "Check the folders for files that are gone").click().run()
        assert "2 stored paths no longer exist" in texts(at)
        assert f"cbir sync {display_path(root)}" in [c.value for c in at.code][-1]
    finally:
        for path in victims:
            shutil.move(tmp_path / path.name, path)
    at = page("home")
    next(b for b in at.button if b.label == "Check the folders for files that are gone").click().run()
    assert "Every stored path exists on disk." in [s.value for s in at.success]


def test_sync_refuses_a_missing_or_empty_folder(synced: dict, tmp_path: Path) -> None:
    root, before = synced["root"], stored()
    missing = run_cli("sync", str(root / "no-such-folder"))
    assert missing.returncode == 2 and missing.stderr.strip() == errors(missing.stderr)[0], missing.stderr
    assert "is not available (missing, or its disk is not mounted): nothing was changed" in missing.stderr
    shutil.move(root / "emu", tmp_path / "emu")  # an unmounted disk leaves an empty mount point
    (root / "emu").mkdir()
    try:
        empty = run_cli("sync", str(root / "emu"))
        assert empty.returncode == 2 and empty.stderr.strip() == errors(empty.stderr)[0], empty.stderr
        assert "is empty but 7 stored paths are under it (a disk not mounted?): nothing was changed" in empty.stderr
    finally:
        (root / "emu").rmdir()
        shutil.move(tmp_path / "emu", root / "emu")
    assert stored() == before


def dump(conn) -> dict[str, set[str]]:
    """Every row of every cbir table, as text (bytea in hex, vectors and bits in full)."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
    ]
    return {t: {r[0] for r in conn.execute(f"SELECT to_jsonb(t)::text FROM {t} t")} for t in tables}


def about(row: str, ids: set[int]) -> bool:
    """Whether a dumped row is about one of these images."""
    import json

    values = json.loads(row)
    return any(values.get(key) in ids for key in ("image_id", "query_id")) or (
        "sha256" in values and values.get("id") in ids
    )


def test_removing_one_folder_leaves_every_other_row_byte_identical(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 8, "bass": 8, "beaver": 8})
    ingest([root], MODEL, progress=False)
    ingest([root], "pixels-umap", progress=False)  # its stored inputs must go too
    with db.connect() as conn:
        projection.project(conn, MODEL, n_neighbors=5, progress=False)
    evaluate([MODEL], progress=False)
    with db.connect() as conn:
        before = dump(conn)
        emu = {r[0] for r in conn.execute("SELECT id FROM images WHERE category = 'emu'")}
    out = run_cli("remove", str(root / "emu"), "--yes", check=True).stdout
    assert "removing 8 paths: 8 images go (with their embeddings, map points and stored inputs), 0 keep another" in out
    assert "category emu: 8 images" in out and "model phash: 8 embeddings" in out
    assert "model pixels-umap: 8 embeddings" in out
    assert "removed 8 images and 8 paths" in out
    with db.connect() as conn:
        after = dump(conn)
    assert len(emu) == 8
    bookkeeping = {"collection_changes", "collection_generation"}
    for table in before.keys() - bookkeeping:
        kept = {row for row in before[table] if not about(row, emu)}
        assert after[table] == kept, table
    assert sum(about(row, emu) for rows in before.values() for row in rows) >= 8 * 5  # images, paths, 2 models, map
    [change] = after["collection_changes"] - before["collection_changes"]
    assert '"removed": 8' in change and '"added": 0' in change
    assert set(stored()) == on_disk(root) - on_disk(root / "emu")  # the files themselves are still there
    assert len(on_disk(root / "emu")) == 8


def test_remove_refuses_paths_not_in_the_collection(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 3, "bass": 3})
    ingest([root], MODEL, progress=False)
    nothing = run_cli("remove", str(tmp_path / "elsewhere"), "--yes")
    assert nothing.returncode == 2 and nothing.stdout == ""
    assert nothing.stderr.strip() == f"cbir: not in the collection: {display_path(tmp_path / 'elsewhere')}"
    partly = run_cli("remove", str(tmp_path / "elsewhere"), str(root / "emu" / "image_0001.jpg"), "--yes")
    assert partly.returncode == 0, partly.stderr
    assert errors(partly.stderr) == [f"cbir: not in the collection: {display_path(tmp_path / 'elsewhere')}"]
    assert "removed 1 images and 1 paths" in partly.stdout
    dry = run_cli("remove", str(root / "bass"), "--dry-run", check=True).stdout
    assert "would remove 3 paths" in dry and "nothing was changed (--dry-run)" in dry
    declined = run_cli("remove", str(root / "bass"), input="n\n")
    assert declined.returncode == 1 and "Remove 3 paths and 3 images?" in declined.stdout
    assert len(stored()) == 5


def test_removing_everything_asks_twice_or_needs_yes_all(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 3, "bass": 3})
    ingest([root], MODEL, progress=False)
    refused = run_cli("remove", "/", "--yes")
    assert refused.returncode == 2 and refused.stderr.strip() == errors(refused.stderr)[0]
    assert "this removes every image in the collection (6); pass --yes --all" in refused.stderr
    once = run_cli("remove", str(root), input="y\nn\n")
    assert once.returncode == 1
    assert "This removes EVERY image in the collection (6). Continue?" in once.stdout
    assert "Really remove all of them? There is no undo" in once.stdout
    assert len(stored()) == 6
    twice = run_cli("remove", str(root), input="y\ny\n")
    assert twice.returncode == 0 and "removed 6 images and 6 paths" in twice.stdout
    assert stored() == {}
    ingest([root], MODEL, progress=False)
    assert "removed 6 images and 6 paths" in run_cli("remove", "/", "--yes", "--all", check=True).stdout
    with db.connect() as conn:
        assert path_changes.image_count(conn) == 0 and roots.collection_roots(conn) == []


def test_sync_follows_files_whose_bytes_changed_in_place(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 4, "bass": 4})
    ingest([root], MODEL, progress=False)
    before = stored()
    emu1, emu2, bass1 = (
        root / "emu" / "image_0001.jpg",
        root / "emu" / "image_0002.jpg",
        root / "bass" / "image_0001.jpg",
    )
    shutil.copy(bass1, emu1)  # now a copy of a stored image
    shutil.copy(caltech_files("ant", 1)[0], emu2)  # now bytes that are not stored
    out = run_cli("sync", str(root), check=True).stdout
    assert "added 1, moved 0, relabelled 0, removed 2, unchanged 6" in out and "paths: 2 forgotten" in out, out
    after = stored()
    assert set(after) == on_disk(root)
    assert after[display_path(emu1)][:2] == before[display_path(bass1)][:2]  # the bass photo's image
    assert after[display_path(emu1)][2:] == ("bass", display_path(bass1))  # a tie: the first folder, bass
    assert after[display_path(emu2)][1] not in {v[1] for v in before.values()}
    assert after[display_path(emu2)][2] == "emu"
    invariants()


def test_relabel_from_folders_follows_the_majority_of_paths(fresh_home: Path, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    a, b, c = caltech_files("emu", 3)
    for folder, src, name in [
        ("bass", a, "a.jpg"),  # a: bass, then two copies in emu -> emu (majority)
        ("emu", a, "a1.jpg"),
        ("emu", a, "a2.jpg"),
        ("zebra", b, "b.jpg"),  # b: zebra, then one copy in crab -> crab (a tie: alphabetically first)
        ("crab", b, "b.jpg"),
        ("emu", c, "c.jpg"),  # c: one path -> its folder
    ]:
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / folder / name)
    ingest([root / "bass", root / "zebra", root / "emu", root / "crab"], MODEL, progress=False)  # first seen wins
    assert sorted({v[2] for v in stored().values()}) == ["bass", "emu", "zebra"]
    refused = run_cli("relabel")
    assert refused.returncode == 2 and "relabel needs --from-folders" in refused.stderr
    dry = run_cli("relabel", "--from-folders", "--dry-run", check=True).stdout
    assert "would relabel 2 of 3 images" in dry
    out = run_cli("relabel", "--from-folders", check=True).stdout
    assert "relabelled 2 of 3 images" in out and "bass -> emu: 1" in out and "zebra -> crab: 1" in out
    after = stored()
    assert after[display_path(root / "emu" / "a1.jpg")][2:] == ("emu", display_path(root / "emu" / "a1.jpg"))
    assert after[display_path(root / "crab" / "b.jpg")][2:] == ("crab", display_path(root / "crab" / "b.jpg"))
    assert "relabelled 0 of 3 images" in run_cli("relabel", "--from-folders", check=True).stdout


def test_the_category_rule() -> None:
    assert category_for(["/x/emu/1.jpg", "/y/emu/2.jpg", "/z/bass/3.jpg"]) == "emu"
    assert category_for(["/x/zebra/1.jpg", "/y/crab/1.jpg"]) == "crab"
    assert category_for(["/1.jpg"]) is None
    state = ImageState(1, "emu", "/x/emu/1.jpg", ("/a/bass/1.jpg", "/x/emu/1.jpg"))
    assert first_path(state, "emu") == "/x/emu/1.jpg"  # kept while it exists and fits
    assert first_path(state, "bass") == "/a/bass/1.jpg"
    gone = ImageState(1, "emu", "/old/emu/1.jpg", ("/b/emu/2.jpg", "/a/bass/1.jpg"))
    assert first_path(gone, "emu") == "/b/emu/2.jpg" and first_path(gone, None) == "/a/bass/1.jpg"
