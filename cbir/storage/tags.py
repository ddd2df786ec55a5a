"""The `image_tags` table (migrations/100_image_tags.sql): analysts' tags on images, the SQL only.

Every write is one statement over arrays (one transaction however many images), so tagging 100,000 images
of a Map selection takes about a second; a tag, note or who that breaks the rules is refused before any SQL.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

from cbir.errors import BadArgument

MAX_TAG = 64
MAX_NOTE = 1000
MAX_WHO = 200


def check_tag(tag: str) -> str:
    """The tag as stored, or BadArgument: 1 to 64 characters, no spaces at the ends, no control characters."""
    if not isinstance(tag, str) or not tag.strip():
        raise BadArgument("a tag name cannot be empty")
    if len(tag) > MAX_TAG:
        raise BadArgument(f"a tag name is at most {MAX_TAG} characters (this one has {len(tag)})")
    if tag != tag.strip() or any(unicodedata.category(c) == "Cc" for c in tag):
        raise BadArgument(f"a tag name has no spaces at its ends and no control characters: {tag[:40]!r}")
    return tag


def _check_note_and_who(note: str | None, who: str) -> None:
    if note is not None and len(note) > MAX_NOTE:
        raise BadArgument(f"a tag's note is at most {MAX_NOTE} characters (this one has {len(note)})")
    if not who or len(who) > MAX_WHO:
        raise BadArgument(f"who tagged must be 1 to {MAX_WHO} characters")


@dataclass(frozen=True)
class Found:
    """Which of the given image ids and paths are stored (as image ids, in the order given) and which are not."""

    image_ids: list[int]
    unknown_ids: list[int]
    unknown_paths: list[str]


def find_images(conn: psycopg.Connection, ids: Sequence[int], paths: Sequence[str]) -> Found:
    """Stored image ids for these ids and absolute paths (any path of an image, not only its first)."""
    id_rows = conn.execute(
        "SELECT r.id, i.id FROM unnest(%s::bigint[]) WITH ORDINALITY r(id, n) LEFT JOIN images i ON i.id = r.id"
        " ORDER BY r.n",
        (list(ids),),
    ).fetchall()
    path_rows = conn.execute(
        "SELECT r.path, p.image_id FROM unnest(%s::text[]) WITH ORDINALITY r(path, n)"
        " LEFT JOIN image_paths p ON p.path = r.path ORDER BY r.n",
        (list(paths),),
    ).fetchall()
    found = [r[1] for r in id_rows + path_rows if r[1] is not None]
    return Found(
        image_ids=list(dict.fromkeys(found)),
        unknown_ids=[r[0] for r in id_rows if r[1] is None],
        unknown_paths=[r[0] for r in path_rows if r[1] is None],
    )


def add(conn: psycopg.Connection, tag: str, image_ids: Sequence[int], who: str, note: str | None = None) -> int:
    """Tag these images in one transaction; returns how many were newly tagged (a new note replaces an old one)."""
    check_tag(tag)
    _check_note_and_who(note, who)
    with conn.transaction():
        before = _count(conn, tag)
        conn.execute(
            "INSERT INTO image_tags (tag, image_id, note, who) SELECT %s, unnest(%s::bigint[]), %s, %s"
            " ON CONFLICT (tag, image_id) DO UPDATE SET note = coalesce(EXCLUDED.note, image_tags.note)",
            (tag, list(dict.fromkeys(image_ids)), note, who),
        )
        return _count(conn, tag) - before


def _count(conn: psycopg.Connection, tag: str) -> int:
    return conn.execute("SELECT count(*) FROM image_tags WHERE tag = %s", (tag,)).fetchone()[0]


def remove(conn: psycopg.Connection, tag: str, image_ids: Sequence[int] | None = None) -> int:
    """Untag these images (None: every image with the tag); returns how many lost it."""
    check_tag(tag)
    if image_ids is None:
        cur = conn.execute("DELETE FROM image_tags WHERE tag = %s", (tag,))
    else:
        cur = conn.execute(
            "DELETE FROM image_tags WHERE tag = %s AND image_id = ANY(%s::bigint[])", (tag, list(image_ids))
        )
    return cur.rowcount


@dataclass(frozen=True)
class TagCount:
    tag: str
    images: int
    last_tagged: datetime

    def as_dict(self) -> dict:
        return asdict(self) | {"last_tagged": self.last_tagged.isoformat()}


def counts(conn: psycopg.Connection) -> list[TagCount]:
    """Every tag with its number of images, most images first."""
    rows = conn.execute(
        "SELECT tag, count(*), max(created_at) FROM image_tags GROUP BY tag ORDER BY count(*) DESC, tag"
    )
    return [TagCount(*r) for r in rows]


def names(conn: psycopg.Connection) -> list[str]:
    """Every tag in use, alphabetically, for pickers."""
    return [r[0] for r in conn.execute("SELECT DISTINCT tag FROM image_tags ORDER BY tag")]


@dataclass(frozen=True)
class Tagged:
    """One image of a tag, with who tagged it, when and the note."""

    id: int
    path: str
    category: str | None
    note: str | None
    who: str
    created_at: datetime

    def as_dict(self) -> dict:
        return asdict(self) | {"created_at": self.created_at.isoformat()}


def images_of(conn: psycopg.Connection, tag: str) -> list[Tagged]:
    """The images with this tag, oldest tagging first."""
    rows = conn.execute(
        "SELECT i.id, i.path, i.category, t.note, t.who, t.created_at FROM image_tags t"
        " JOIN images i ON i.id = t.image_id WHERE t.tag = %s ORDER BY t.created_at, i.id",
        (check_tag(tag),),
    )
    return [Tagged(*r) for r in rows]


def image_ids_of(conn: psycopg.Connection, tag: str) -> list[int]:
    """Ids of the images with this tag, in id order."""
    rows = conn.execute("SELECT image_id FROM image_tags WHERE tag = %s ORDER BY image_id", (check_tag(tag),))
    return [r[0] for r in rows]


def tags_of(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each of these images' tags, alphabetically (images without a tag are left out)."""
    rows = conn.execute(
        "SELECT image_id, array_agg(tag ORDER BY tag) FROM image_tags WHERE image_id = ANY(%s::bigint[])"
        " GROUP BY image_id",
        (list(image_ids),),
    )
    return {r[0]: list(r[1]) for r in rows}
