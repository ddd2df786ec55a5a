"""The `image_metadata` table (migrations/070_image_metadata.sql): what the camera recorded, per image.

Rows are written by ingest inside each batch's transaction (`collection.write_batch`), read by the Search
page's camera picker and the Map's colouring; search filters on them in `neighbours.nearest_query`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from cbir.photo_metadata import PhotoMetadata

COLUMNS = (
    "taken_at",
    "utc_offset_minutes",
    "camera_make",
    "camera_model",
    "lens",
    "focal_length_mm",
    "f_number",
    "exposure_s",
    "iso",
    "gps_latitude",
    "gps_longitude",
    "gps_altitude_m",
    "software",
    "raw_decode",
)
_INSERT = (
    f"INSERT INTO image_metadata (image_id, {', '.join(COLUMNS)}, malformed)"
    f" VALUES (%s, {', '.join(['%s'] * len(COLUMNS))}, %s) ON CONFLICT (image_id) DO NOTHING"
)


def insert(cur: psycopg.Cursor, rows: Sequence[tuple[int, PhotoMetadata]]) -> None:
    """Store (image id, metadata) pairs with the caller's transaction; an image that has a row keeps it."""
    cur.executemany(
        _INSERT, [(image_id, *(getattr(m, c) for c in COLUMNS), Jsonb(m.malformed)) for image_id, m in rows]
    )


def cameras(conn: psycopg.Connection) -> list[str]:
    """Every camera name recorded (image_metadata.camera), most images first, for pickers."""
    rows = conn.execute(
        "SELECT camera FROM image_metadata WHERE camera IS NOT NULL GROUP BY camera ORDER BY count(*) DESC, camera"
    )
    return [r[0] for r in rows]


@dataclass(frozen=True)
class PhotoFacts:
    """What a map colours by: the year taken and the camera (None when not recorded)."""

    year: int | None
    camera: str | None


def photo_facts(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, PhotoFacts]:
    """Year taken and camera of each image that has a metadata row."""
    rows = conn.execute(
        "SELECT image_id, extract(year FROM taken_at)::int, camera FROM image_metadata WHERE image_id = ANY(%s)",
        (list(image_ids),),
    )
    return {r[0]: PhotoFacts(year=r[1], camera=r[2]) for r in rows}
