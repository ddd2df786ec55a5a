"""Turn the bytes of an arbitrary file into a clean RGB picture, or say in one line why not.

Images are detected by content (Pillow's decoders), never by file extension. Orientation from EXIF is
applied; greyscale, 16-bit, CMYK, palette and alpha images are converted so every model sees the same
thing an analyst sees on screen.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse images larger than this (decompression bombs); CBIR_MAX_PIXELS changes it.
MAX_PIXELS = int(os.environ.get("CBIR_MAX_PIXELS", str(100_000_000)))
# Refuse files larger than this before reading them fully; CBIR_MAX_BYTES changes it.
MAX_BYTES = int(os.environ.get("CBIR_MAX_BYTES", str(200 * 1024 * 1024)))
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


def decode(data: bytes) -> Picture:
    """Decode image bytes; raises BadImage with a short reason for anything unusable."""
    if not data:
        raise BadImage("empty file")
    if len(data) > MAX_BYTES:
        raise BadImage(f"file larger than {MAX_BYTES} bytes (CBIR_MAX_BYTES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if img.width * img.height > MAX_PIXELS:
                raise BadImage(f"{img.width}x{img.height} pixels is over the limit of {MAX_PIXELS} (CBIR_MAX_PIXELS)")
            img.load()  # first frame of animations
            img = ImageOps.exif_transpose(img)
            rgb = to_rgb(img)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised content)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"decompression bomb refused: {exc}") from None
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
