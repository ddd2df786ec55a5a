"""Export a selection (a tag, a category, chosen ids, a search's hits) as CSV or JSON: `cbir export` and the
dashboard's download buttons call `export_text`. Each row: id, path, every path, category, tags, time taken
and camera where the camera recorded them, and the distance when the rows come from a search.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence

import psycopg

from cbir.errors import BadArgument
from cbir.storage import exports
from cbir.storage.tags import check_tag

FORMATS = ("csv", "json")
COLUMNS = ["id", "path", "paths", "category", "tags", "taken_at", "camera"]


def selection(conn: psycopg.Connection, tag: str | None = None, category: str | None = None) -> list[int]:
    """Ids of the images with this tag and in this category (None: any)."""
    return exports.select_ids(conn, None if tag is None else check_tag(tag), category)


def rows(
    conn: psycopg.Connection, image_ids: Sequence[int], distances: Mapping[int, float] | None = None
) -> list[dict]:
    """One dict per stored image, in the order given; `distance` only when distances are given."""
    out = []
    for f in exports.image_facts(conn, image_ids):
        row = {"id": f.id, "path": f.path, "paths": f.paths, "category": f.category, "tags": f.tags}
        row |= {"taken_at": f.taken_at.isoformat() if f.taken_at else None, "camera": f.camera}
        if distances is not None:
            row["distance"] = distances.get(f.id)
        out.append(row)
    return out


def render(table: list[dict], fmt: str, with_distance: bool = False) -> str:
    """CSV (lists joined by ';', blanks for unknowns) or a JSON array."""
    if fmt not in FORMATS:
        raise BadArgument(f"unknown export format {fmt!r}: use csv or json")
    if fmt == "json":
        return json.dumps(table, indent=2)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS + (["distance"] if with_distance else []), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


def export_text(
    conn: psycopg.Connection,
    image_ids: Sequence[int],
    fmt: str,
    distances: Mapping[int, float] | None = None,
) -> str:
    """The export of these images in this format (the text a download button or `--out` file holds)."""
    return render(rows(conn, image_ids, distances), fmt, with_distance=distances is not None)
