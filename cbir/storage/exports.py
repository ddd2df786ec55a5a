"""What an export lists per image, read in one query: the SQL of `cbir export` and the dashboard's downloads.

Paths, tags and what the camera recorded (image_metadata: time taken, camera) come with each image; images
are returned in the order asked for (a search's ranking stays a ranking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class ImageFacts:
    id: int
    path: str  # the first path the image was seen at
    paths: list[str]  # every path of its bytes
    category: str | None
    tags: list[str]
    taken_at: datetime | None  # the camera's clock, no time zone
    camera: str | None


def image_facts(conn: psycopg.Connection, image_ids: Sequence[int]) -> list[ImageFacts]:
    """Each stored image of these ids, in the order given (unknown ids and repeats are left out)."""
    rows = conn.execute(
        "SELECT i.id, i.path,"
        " coalesce((SELECT array_agg(p.path ORDER BY p.path) FROM image_paths p WHERE p.image_id = i.id), '{}'),"
        " i.category,"
        " coalesce((SELECT array_agg(t.tag ORDER BY t.tag) FROM image_tags t WHERE t.image_id = i.id), '{}'),"
        " m.taken_at, m.camera"
        " FROM (SELECT id, min(n) AS n FROM unnest(%s::bigint[]) WITH ORDINALITY r(id, n) GROUP BY id) r"
        " JOIN images i ON i.id = r.id LEFT JOIN image_metadata m ON m.image_id = i.id ORDER BY r.n",
        (list(image_ids),),
    )
    return [ImageFacts(r[0], r[1], list(r[2]), r[3], list(r[4]), r[5], r[6]) for r in rows]


def select_ids(conn: psycopg.Connection, tag: str | None = None, category: str | None = None) -> list[int]:
    """Ids of the images with this tag and in this category (None: any), in id order."""
    rows = conn.execute(
        "SELECT i.id FROM images i WHERE (%(category)s::text IS NULL OR i.category = %(category)s)"
        " AND (%(tag)s::text IS NULL"
        " OR EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = i.id AND t.tag = %(tag)s))"
        " ORDER BY i.id",
        {"tag": tag, "category": category},
    )
    return [r[0] for r in rows]
