"""Turn the bytes of an arbitrary file into a clean RGB picture, or say in one line why not.

Images are detected by content (Pillow's decoders, pillow-heif for HEIC/HEIF, LibRaw through rawpy for
camera RAW), never by file extension. Orientation from EXIF (or HEIF's transforms, or the RAW's flip) is
applied; greyscale, 16-bit, CMYK, palette and alpha images are converted so every model sees the same
thing an analyst sees on screen. A RAW file is shown by its embedded preview when that is at least
RAW_PREVIEW_MIN_SIDE on its short side, else demosaiced; `Picture.raw_decode` says which.

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
import pillow_heif
import rawpy
from PIL import Image, ImageOps, UnidentifiedImageError

from cbir.config import settings
from cbir.errors import BadImage

THUMBNAIL_SIZE = 160
# The short side every built-in model resizes to before its 224 crop (DINOv2, EfficientNet-Lite0; phash and
# pixels-umap need less): a smaller RAW preview would be upscaled, so the RAW is demosaiced instead.
RAW_PREVIEW_MIN_SIDE = 256
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # DNG, CR2, NEF, ARW, PEF, ... are TIFF inside
# LibRaw reads any 16-bit one-channel TIFF as a Bayer mosaic, so a TIFF counts as RAW only with a RAW's mark:
# a DNGVersion tag (0xC612, BYTE x 4), a CFA PhotometricInterpretation (0x0106 = 32803, SHORT x 1) in any
# directory, or Canon's "CR" CR2 header; each as a whole IFD entry in either byte order.
_RAW_TIFF_ENTRIES = (
    bytes.fromhex("12c6010004000000"),
    bytes.fromhex("c612000100000004"),
    bytes.fromhex("060103000100000023800000"),
    bytes.fromhex("010600030000000180230000"),
)
# Other RAW containers, by their first bytes (LibRaw also guesses RAW from file sizes alone, so anything
# without a RAW's mark is never offered to it): ORF, RW2, RAF, CR3 (an ISO file of brand "crx ").
_RAW_STARTS = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00", b"FUJIFILMCCD-RAW", b"\x00\x00\x00\x18ftypcrx ")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
_DNG_VERSION_TAG = 50706
_FLIPS = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}

pillow_heif.register_heif_opener()  # HEIC/HEIF open like any Pillow image, orientation already applied


@dataclass
class Picture:
    """A decoded image and the facts stored about it."""

    rgb: Image.Image
    sha256: str
    width: int
    height: int
    format: str
    nbytes: int
    exif: Image.Exif | None = None  # what the camera recorded (cbir.photo_metadata reads it)
    raw_decode: str | None = None  # camera RAW only: 'preview' (embedded JPEG/bitmap) or 'demosaic'


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
    try:  # the descriptor is closed on every way out, a refusal included
        before = os.fstat(fd)
        if stat.S_ISDIR(before.st_mode):
            raise BadImage("is a folder, not an image")
        if not stat.S_ISREG(before.st_mode):
            raise BadImage("not a regular file")
        max_bytes = settings().max_bytes
        if before.st_size > max_bytes:
            raise BadImage(f"file larger than {max_bytes} bytes (CBIR_MAX_BYTES)")
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
        after = os.fstat(fd)
    except OSError as exc:
        raise BadImage(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        raise BadImage("file changed while being read (re-run ingest to pick it up)")
    return data


def _check_size(width: int, height: int) -> None:
    s = settings()
    if width * height > s.max_pixels:
        raise BadImage(f"{width}x{height} pixels is over the limit of {s.max_pixels} (CBIR_MAX_PIXELS)")
    if max(width, height) > s.max_aspect * max(1, min(width, height)):
        raise BadImage(f"{width}x{height} is more elongated than {s.max_aspect:g}:1 (CBIR_MAX_ASPECT)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _libraw_reason(exc: rawpy.LibRawError) -> str:
    message = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    if isinstance(exc, rawpy.LibRawIOError):
        return f"cannot decode RAW: truncated or damaged image data (LibRaw: {message})"
    return f"cannot decode RAW: {message}"


def _tiff_exif(data: bytes) -> Image.Exif | None:
    """The EXIF of a TIFF-based RAW file (its IFD0 and sub-IFDs), or None when it cannot be parsed."""
    exif = Image.Exif()
    try:
        exif.load(data)
        dict(exif)  # parse now: damage shows here, not later
    except Exception:  # any damage in a directory means no metadata, never a lost image
        return None
    return exif


def _raw_preview(raw: rawpy.RawPy) -> Image.Image | None:
    """The embedded preview, upright, when it is large enough for the models; else None."""
    try:
        thumb = raw.extract_thumb()
        if thumb.format == rawpy.ThumbFormat.JPEG:
            img = Image.open(io.BytesIO(thumb.data))
            img.load()
        else:
            img = Image.fromarray(thumb.data)
    except (rawpy.LibRawError, OSError, ValueError, SyntaxError):
        return None  # no preview, or a damaged one: demosaic instead
    if min(img.size) < RAW_PREVIEW_MIN_SIDE:
        return None
    img = to_rgb(img)
    flip = _FLIPS.get(raw.sizes.flip)
    return img.transpose(flip) if flip is not None else img


def _demosaic(raw: rawpy.RawPy) -> Image.Image:
    """LibRaw's demosaic at the camera's white balance into sRGB, half size when that is still big enough.

    No automatic brightening: dcraw's histogram stretch brightens dark scenes unevenly (up to 26 levels off
    the original on Caltech-101 mosaics, against 1-9 without it), so the exposure stays as recorded.
    """
    half = min(raw.sizes.width, raw.sizes.height) // 2 >= RAW_PREVIEW_MIN_SIDE
    try:
        pixels = raw.postprocess(
            use_camera_wb=True, output_bps=8, gamma=(2.4, 12.92), no_auto_bright=True, half_size=half
        )
    except rawpy.LibRawError as exc:
        raise BadImage(_libraw_reason(exc)) from None
    return Image.fromarray(pixels, "RGB")


def _looks_raw(data: bytes) -> bool:
    if data[:4] in _TIFF_MAGIC:
        return data[8:10] == b"CR" or any(entry in data for entry in _RAW_TIFF_ENTRIES)
    return data.startswith(_RAW_STARTS)


def decode_raw(data: bytes) -> Picture | None:
    """A camera RAW file through LibRaw, or None when the bytes are not RAW."""
    if not _looks_raw(data):
        return None
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError:
        return None
    except rawpy.LibRawError as exc:
        raise BadImage(_libraw_reason(exc)) from None
    with raw:
        sizes = raw.sizes
        width, height = (sizes.height, sizes.width) if sizes.flip in (5, 6) else (sizes.width, sizes.height)
        _check_size(width, height)
        preview = _raw_preview(raw)
        rgb = preview if preview is not None else _demosaic(raw)
    exif = _tiff_exif(data) if data[:4] in _TIFF_MAGIC else None
    return Picture(
        rgb=rgb,
        sha256=sha256_of(data),
        width=width,
        height=height,
        format="DNG" if exif is not None and _DNG_VERSION_TAG in exif else "RAW",
        nbytes=len(data),
        exif=exif,
        raw_decode="demosaic" if preview is None else "preview",
    )


def _is_heif(data: bytes) -> bool:
    """An ISO base media file whose brands say HEIF (HEIC, or HEIF with another codec)."""
    if data[4:8] != b"ftyp":
        return False
    size = int.from_bytes(data[:4], "big")
    brands = data[8:12], *(data[i : i + 4] for i in range(16, min(size, 64), 4))
    return any(b in _HEIF_BRANDS for b in brands)


def _heif_reason(data: bytes) -> str:
    """Why a HEIF file cannot be read: libheif's own reason, or a codec this build has no decoder for."""
    try:
        pillow_heif.open_heif(io.BytesIO(data))
    except ValueError as exc:
        return f"cannot decode HEIF: {_first_line(exc)}"
    except IndexError:
        pass  # a valid container whose images all use codecs pillow-heif cannot decode
    decoders = ", ".join(pillow_heif.libheif_info().get("decoders", {})) or "none"
    return f"HEIF with no image this build can decode (unsupported codec; decoders here: {decoders})"


def _open_with_pillow(data: bytes) -> tuple[Image.Image, Image.Exif | None, str]:
    """(upright RGB, EXIF, format) through Pillow and pillow-heif."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides instead
        img = Image.open(io.BytesIO(data))
        fmt = img.format or "unknown"
        _check_size(img.width, img.height)
        img.load()  # first frame of animations
        try:
            exif = img.getexif()
        except Exception:  # damaged EXIF: the picture is still good, its metadata is not
            exif = None
        return to_rgb(ImageOps.exif_transpose(img)), exif, fmt


def decode(data: bytes) -> Picture:
    """Decode image bytes; raises BadImage with a short reason for anything unusable."""
    if not data:
        raise BadImage("empty file")
    max_bytes = settings().max_bytes
    if len(data) > max_bytes:
        raise BadImage(f"file larger than {max_bytes} bytes (CBIR_MAX_BYTES)")
    tiff = data[:4] in _TIFF_MAGIC
    if tiff and (picture := decode_raw(data)) is not None:  # before Pillow, which would show a RAW's thumbnail
        return picture
    try:
        rgb, exif, fmt = _open_with_pillow(data)
    except BadImage:
        raise
    except UnidentifiedImageError:
        if _is_heif(data):
            raise BadImage(_heif_reason(data)) from None
        if not tiff and (picture := decode_raw(data)) is not None:  # CR3, RAF, ORF, RW2, ...
            return picture
        raise BadImage("not an image (unrecognised content)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit, checked before ours
        size = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{size.group(1)} pixels" if size else "the image"
        raise BadImage(
            f"decompression bomb refused: {pixels} is over the limit of {settings().max_pixels} (CBIR_MAX_PIXELS)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(f"cannot decode{' HEIF' if _is_heif(data) else ''}: {_first_line(exc)}") from None
    if min(rgb.size) < 1:
        raise BadImage("image has no pixels")
    return Picture(
        rgb=rgb, sha256=sha256_of(data), width=rgb.width, height=rgb.height, format=fmt, nbytes=len(data), exif=exif
    )


def thumbnail_jpeg(img: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small JPEG kept in the database so pages can show results without touching the files."""
    thumb = img.copy()
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=80)
    return out.getvalue()
