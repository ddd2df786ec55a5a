"""What the camera recorded (EXIF): time taken, camera, lens, exposure and position, as typed values.

Read from Pillow's `Image.Exif`, which parses the EXIF of JPEG, PNG, WebP, TIFF, HEIC (through pillow-heif)
and the TIFF structure of camera RAW files. Metadata is written by thousands of firmwares and editors, so
each field is checked on its own: a field that is present but unusable (a date in year 0, a GPS rational
with a zero denominator, a value out of range, a string of megabytes) is left empty and named in
`malformed` with a one-line reason, and never stops an ingest. Maker notes are never read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from PIL import Image

IFD0, EXIF_IFD, GPS_IFD = 0, 0x8769, 0x8825
FIRST_PHOTOGRAPH_YEAR = 1826  # Niepce; earlier "taken" years are clock errors
MAX_TEXT = 256  # longer strings in a make, model, lens or software field are garbage, not names
MAX_OFFSET_MINUTES = 14 * 60  # UTC-12:00 .. UTC+14:00

_DATE = re.compile(r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):(\d{2})\s*$")


class Malformed(ValueError):
    """A metadata field is present but unusable; its message is the one-line reason."""


@dataclass
class PhotoMetadata:
    """One image's camera facts (None: not recorded, or malformed and named in `malformed`)."""

    taken_at: datetime | None = None  # wall-clock time as the camera recorded it (no zone)
    utc_offset_minutes: int | None = None  # the zone of taken_at, when the camera recorded one
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    focal_length_mm: float | None = None
    f_number: float | None = None
    exposure_s: float | None = None
    iso: int | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    gps_altitude_m: float | None = None
    software: str | None = None
    raw_decode: str | None = None  # camera RAW only, set by the decoder: 'preview' or 'demosaic'
    malformed: dict[str, str] = field(default_factory=dict)  # field -> why it was left empty

    @property
    def empty(self) -> bool:
        return not self.malformed and all(getattr(self, f.name) is None for f in fields(self) if f.name != "malformed")


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise Malformed(f"not text ({type(value).__name__})")
    value = value.replace("\x00", " ").strip()
    if len(value) > MAX_TEXT:
        raise Malformed(f"text of {len(value)} characters (over {MAX_TEXT})")
    return value or None


def _number(value: Any, low: float, high: float) -> float:
    """A finite number in [low, high] from an EXIF rational, integer or one-element sequence."""
    if isinstance(value, tuple | list) and len(value) >= 1:
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise Malformed(f"not a number ({value!r:.40})") from None
    if not math.isfinite(number):
        raise Malformed("not a finite number (a rational with a zero denominator?)")
    if not low <= number <= high:
        raise Malformed(f"{number:g} is out of range {low:g}..{high:g}")
    return number


def parse_exif_datetime(value: Any, today: date | None = None) -> datetime | None:
    """An EXIF "YYYY:MM:DD HH:MM:SS" time; None when blank (cameras write spaces for "unset")."""
    text = _text(value)
    if text is None or not text.strip(" :"):
        return None
    match = _DATE.match(text)
    if not match:
        raise Malformed(f"date {text[:40]!r} is not YYYY:MM:DD HH:MM:SS")
    year = int(match.group(1))
    latest = (today or date.today()).year + 1
    if not FIRST_PHOTOGRAPH_YEAR <= year <= latest:
        raise Malformed(f"date {text[:19]!r}: year {year} is outside {FIRST_PHOTOGRAPH_YEAR}..{latest}")
    try:
        return datetime(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise Malformed(f"date {text[:19]!r}: {exc}") from None


def parse_utc_offset(value: Any) -> int | None:
    """Minutes east of UTC from an EXIF "+HH:MM"; None when blank."""
    text = _text(value)
    if text is None or not text.strip(" :"):
        return None
    match = _OFFSET.match(text)
    if not match:
        raise Malformed(f"UTC offset {text[:20]!r} is not +HH:MM")
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    if minutes > MAX_OFFSET_MINUTES or int(match.group(3)) >= 60:
        raise Malformed(f"UTC offset {text!r} is out of range")
    return -minutes if match.group(1) == "-" else minutes


def _degrees(value: Any, ref: Any, negative: str, limit: float) -> float:
    """Signed decimal degrees from EXIF (degrees, minutes, seconds) rationals and an N/S or E/W reference."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        raise Malformed(f"not three numbers ({value!r:.40})")
    d, m, s = (_number(part, 0, 360) for part in value)
    degrees = d + m / 60 + s / 3600
    if degrees > limit:
        raise Malformed(f"{degrees:g} degrees is over {limit:g}")
    sign = -1 if isinstance(ref, str | bytes) and _text(ref) in (negative, negative.lower()) else 1
    return sign * degrees


class _Reader:
    """Reads fields into a PhotoMetadata, recording each unusable one instead of raising."""

    def __init__(self, exif: Image.Exif) -> None:
        self.ifds = {IFD0: exif}
        self.meta = PhotoMetadata()
        for ifd in (EXIF_IFD, GPS_IFD):
            try:
                self.ifds[ifd] = exif.get_ifd(ifd)
            except Exception as exc:  # a damaged sub-IFD of any kind must not stop the rest
                self.meta.malformed["exif" if ifd == EXIF_IFD else "gps"] = f"unreadable EXIF directory: {exc}"
                self.ifds[ifd] = {}

    def raw(self, *places: tuple[int, int]) -> Any:
        """The first value present among (ifd, tag) places."""
        for ifd, tag in places:
            value = self.ifds[ifd].get(tag)
            if value is not None:
                return value
        return None

    def set(self, name: str, parse: Callable[[], Any], targets: tuple[str, ...] = ()) -> None:
        """Set field `name` (or the `targets` fields from a tuple) to parse()'s value, or record why not."""
        try:
            value = parse()
        except Malformed as exc:
            self.meta.malformed[name] = str(exc)
            return
        except Exception as exc:  # odd types from odd firmware: the field stays empty
            self.meta.malformed[name] = f"unreadable ({type(exc).__name__}: {exc})"[:200]
            return
        for target, part in zip(targets, value or (None,) * len(targets), strict=True) if targets else [(name, value)]:
            setattr(self.meta, target, part)


def _optional(value: Any, parse: Callable[[Any], Any]) -> Any:
    return None if value is None else parse(value)


# field -> (EXIF tag, looked up in the Exif IFD then IFD0 as TIFF/EP RAW files keep it, lowest, highest)
NUMBERS = {
    "focal_length_mm": (0x920A, 0.1, 1e5),
    "f_number": (0x829D, 0.1, 1e4),
    "exposure_s": (0x829A, 1e-7, 1e5),
    "iso": (0x8827, 1, 1e7),
}
TEXTS = {"camera_make": 0x010F, "camera_model": 0x0110, "lens": 0xA434, "software": 0x0131}


def read_metadata(exif: Image.Exif | None, store_gps: bool = True) -> PhotoMetadata:
    """The camera facts in an image's EXIF; store_gps=False (CBIR_STORE_GPS=0) leaves the position out."""
    if exif is None:
        return PhotoMetadata()
    r = _Reader(exif)
    taken = r.raw((EXIF_IFD, 0x9003), (EXIF_IFD, 0x9004), (IFD0, 0x9003), (IFD0, 0x0132))
    r.set("taken_at", lambda: _optional(taken, parse_exif_datetime))
    offset = r.raw((EXIF_IFD, 0x9011), (EXIF_IFD, 0x9012), (EXIF_IFD, 0x9010))
    r.set("utc_offset_minutes", lambda: _optional(offset, parse_utc_offset))
    for name, tag in TEXTS.items():
        r.set(name, lambda tag=tag: _optional(r.raw((EXIF_IFD, tag), (IFD0, tag)), _text))
    for name, (tag, low, high) in NUMBERS.items():
        value = r.raw((EXIF_IFD, tag), (IFD0, tag))
        r.set(name, lambda value=value, low=low, high=high: _optional(value, lambda v: _number(v, low, high)))
    if r.meta.iso is not None:
        r.meta.iso = round(r.meta.iso)
    if store_gps:
        _read_gps(r)
    return r.meta


def _read_gps(r: _Reader) -> None:
    """Latitude and longitude are one field (a position needs both); altitude is its own."""
    gps = r.ifds[GPS_IFD]

    def position() -> tuple[float, float] | None:
        if gps.get(2) is None and gps.get(4) is None:
            return None
        return _degrees(gps.get(2), gps.get(1), "S", 90), _degrees(gps.get(4), gps.get(3), "W", 180)

    r.set("gps_position", position, targets=("gps_latitude", "gps_longitude"))
    below = gps.get(5) in (1, b"\x01")
    r.set("gps_altitude_m", lambda: _optional(gps.get(6), lambda v: (-1 if below else 1) * _number(v, 0, 1e5)))
