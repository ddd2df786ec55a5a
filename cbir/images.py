"""Turn the bytes of an arbitrary file into a clean RGB picture, or say in one line why not.

Images are detected by content (Pillow's decoders), never by file extension. Orientation from EXIF is
applied; greyscale, 16-bit, CMYK, palette and alpha images are converted so every model sees the same
thing an analyst sees on screen.
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

# Refuse images larger than this (decompression bombs); CBIR_MAX_PIXELS changes it. Pillow itself refuses
# anything over twice its own limit (178,956,970 pixels), whatever this says.
MAX_PIXELS = int(os.environ.get("CBIR_MAX_PIXELS", str(100_000_000)))
# Refuse files larger than this before reading them fully; CBIR_MAX_BYTES changes it.
MAX_BYTES = int(os.environ.get("CBIR_MAX_BYTES", str(200 * 1024 * 1024)))
# Refuse query uploads larger than this (the dashboard holds them in memory); CBIR_MAX_UPLOAD_BYTES.
MAX_UPLOAD_BYTES = int(os.environ.get("CBIR_MAX_UPLOAD_BYTES", str(50 * 1024 * 1024)))
# Refuse strips longer than this ratio: resizing the short side to the model's input would need gigapixels.
MAX_ASPECT = float(os.environ.get("CBIR_MAX_ASPECT", "100"))
THUMBNAIL_SIZE = 160


class BadImage(ValueError):
    """The file is not an image we can use; the message is the one-line reason."""


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
    """A file's bytes, or BadImage: only regular files (a FIFO would block), up to MAX_BYTES, read whole.

    A file whose size or modification time changes while it is read is refused rather than stored half
    old, half new; the next ingest picks it up.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadImage(f"cannot read: {exc.strerror or exc}") from None
    with open(fd, "rb") as handle:
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise BadImage("not a regular file")
            if before.st_size > MAX_BYTES:
                raise BadImage(f"file larger than {MAX_BYTES} bytes (CBIR_MAX_BYTES)")
            data = handle.read(MAX_BYTES + 1)
            after = os.fstat(fd)
        except OSError as exc:
            raise BadImage(f"cannot read: {exc.strerror or exc}") from None
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        raise BadImage("file changed while being read (re-run ingest to pick it up)")
    return data


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise BadImage(f"{width}x{height} pixels is over the limit of {MAX_PIXELS} (CBIR_MAX_PIXELS)")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise BadImage(f"{width}x{height} is more elongated than {MAX_ASPECT:g}:1 (CBIR_MAX_ASPECT)")


def decode(data: bytes) -> Picture:
    """Decode image bytes; raises BadImage with a short reason for anything unusable."""
    if not data:
        raise BadImage("empty file")
    if len(data) > MAX_BYTES:
        raise BadImage(f"file larger than {MAX_BYTES} bytes (CBIR_MAX_BYTES)")
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
            f"decompression bomb refused: {pixels} is over the limit of {MAX_PIXELS} (CBIR_MAX_PIXELS)"
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
