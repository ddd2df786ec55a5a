"""Turn the bytes of an arbitrary file into a clean RGB picture, or say in one line why not.

Images are detected by content (Pillow's decoders), never by file extension. Orientation from EXIF is
applied; greyscale, 16-bit, CMYK, palette and alpha images are converted so every model sees the same
thing an analyst sees on screen.

Limits come from the settings (read at each call): CBIR_MAX_BYTES before a file is read whole,
CBIR_MAX_PIXELS against decompression bombs (Pillow itself refuses anything over twice its own limit,
178,956,970 pixels, whatever it says), and CBIR_MAX_ASPECT against strips whose short side, resized to
a model's input, would need gigapixels.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cbir.config import settings
from cbir.errors import BadImage

THUMBNAIL_SIZE = 160


@dataclass
class Picture:
    """A decoded image and the facts stored about it."""

    rgb: Image.Image
    sha256: str
    width: int
    height: int
    format: str
    nbytes: int


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite transparent pixels onto white, as image viewers show them."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without clipping or dropping content."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        return _flatten_alpha(img)
    return img.convert("RGB")


def read_image_file(path: str | os.PathLike) -> bytes:
    """A file's bytes, or BadImage: only regular files (a FIFO would block), up to CBIR_MAX_BYTES, read whole.

    A file whose size or modification time changes while it is read is refused rather than stored half
    old, half new; the next ingest picks it up.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadImage(f"cannot read: {exc.strerror or exc}") from None
    max_bytes = settings().max_bytes
    with open(fd, "rb") as handle:
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise BadImage("not a regular file")
            if before.st_size > max_bytes:
                raise BadImage(f"file larger than {max_bytes} bytes (CBIR_MAX_BYTES)")
            data = handle.read(max_bytes + 1)
            after = os.fstat(fd)
        except OSError as exc:
            raise BadImage(f"cannot read: {exc.strerror or exc}") from None
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        raise BadImage("file changed while being read (re-run ingest to pick it up)")
    return data


def _check_size(width: int, height: int) -> None:
    s = settings()
    if width * height > s.max_pixels:
        raise BadImage(f"{width}x{height} pixels is over the limit of {s.max_pixels} (CBIR_MAX_PIXELS)")
    if max(width, height) > s.max_aspect * max(1, min(width, height)):
        raise BadImage(f"{width}x{height} is more elongated than {s.max_aspect:g}:1 (CBIR_MAX_ASPECT)")


def decode(data: bytes) -> Picture:
    """Decode image bytes; raises BadImage with a short reason for anything unusable."""
    if not data:
        raise BadImage("empty file")
    max_bytes = settings().max_bytes
    if len(data) > max_bytes:
        raise BadImage(f"file larger than {max_bytes} bytes (CBIR_MAX_BYTES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides instead
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            _check_size(img.width, img.height)
            img.load()  # first frame of animations
            img = ImageOps.exif_transpose(img)
            rgb = to_rgb(img)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised content)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit, checked before ours
        size = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{size.group(1)} pixels" if size else "the image"
        raise BadImage(
            f"decompression bomb refused: {pixels} is over the limit of {settings().max_pixels} (CBIR_MAX_PIXELS)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(f"cannot decode: {exc}") from None
    if min(rgb.size) < 1:
        raise BadImage("image has no pixels")
    return Picture(rgb=rgb, sha256=sha256_of(data), width=rgb.width, height=rgb.height, format=fmt, nbytes=len(data))


def thumbnail_jpeg(img: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small JPEG kept in the database so pages can show results without touching the files."""
    thumb = img.copy()
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=80)
    return out.getvalue()
