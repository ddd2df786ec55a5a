"""Generators of awkward and hostile input files, written into a temporary folder (no binary fixtures).

Each generator writes one file (or link) into a folder and returns its path. `BAD` maps a generator to the
reason ingest must give when skipping it; `GOOD` lists inputs that are odd but valid and must be stored.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from support import encode


def pattern(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A distinct RGB picture per seed (so no two generated images share bytes)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _write(folder: Path, name: str | bytes, data: bytes) -> Path:
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
    path.write_bytes(data)
    return path


# --- unusable files -------------------------------------------------------------------------------------


def zero_byte(folder: Path) -> Path:
    return _write(folder, "zero.jpg", b"")


def truncated_jpeg(folder: Path) -> Path:
    data = encode(pattern(1, (256, 256)), "JPEG", quality=90)
    return _write(folder, "truncated.jpg", data[: len(data) // 2])


def html_as_jpg(folder: Path) -> Path:
    return _write(folder, "page.jpg", b"<!DOCTYPE html><html><body><img src=x></body></html>\n")


def text_as_jpg(folder: Path) -> Path:
    return _write(folder, "notes.jpg", b"shopping list: milk, bread\n")


def svg(folder: Path) -> Path:
    body = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="20"/></svg>'
    return _write(folder, "drawing.svg", body.encode())


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def decompression_bomb(folder: Path, side: int = 30000) -> Path:
    """A valid side x side 1-bit PNG of zeros: ~100 KB on disk, 900 megapixels (2.7 GB as RGB) decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    return _write(folder, "bomb.png", data)


def extreme_aspect(folder: Path) -> Path:
    """A 1 x 5000 strip: resized to the model's 256-pixel short side it would need 1.3 gigapixels."""
    return _write(folder, "strip.png", encode(Image.new("L", (5000, 1), 128), "PNG"))


def symlink_loop(folder: Path) -> Path:
    a, b = folder / "loop_a.jpg", folder / "loop_b.jpg"
    a.symlink_to(b.name)
    b.symlink_to(a.name)
    return a


def fifo(folder: Path) -> Path:
    """A named pipe with no writer: opening it for reading the usual way blocks forever."""
    path = folder / "pipe.jpg"
    os.mkfifo(path)
    return path


def read_fails(folder: Path) -> Path:
    """A link to /proc/self/mem: it opens fine, but reading offset 0 raises EIO, even for root."""
    path = folder / "unreadable.jpg"
    path.symlink_to("/proc/self/mem")
    return path


def no_permission(folder: Path) -> Path:
    """Mode 000: unreadable for any user but root (tests read it as nobody, see test_reliability_inputs)."""
    path = _write(folder, "secret.jpg", encode(pattern(2), "JPEG"))
    path.chmod(0)
    return path


# --- odd but valid files ----------------------------------------------------------------------------------


def png_16_bit(folder: Path) -> Path:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (32, 1))
    return _write(folder, "sixteen.png", encode(Image.fromarray(ramp), "PNG"))


def cmyk_jpeg(folder: Path) -> Path:
    return _write(folder, "cmyk.jpg", encode(pattern(3).convert("CMYK"), "JPEG", quality=90))


def palette_transparent(folder: Path) -> Path:
    img = pattern(4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _write(folder, "palette.png", encode(img, "PNG", transparency=0))


def exif_rotated(folder: Path) -> Path:
    """Stored 64x48 with EXIF orientation 6: viewers (and cbir) show it 48x64."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _write(folder, "rotated.jpg", encode(pattern(5), "JPEG", exif=exif, quality=90))


def animated_gif(folder: Path) -> Path:
    frames = [pattern(10 + i).convert("P") for i in range(3)]
    return _write(folder, "animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:]))


def one_pixel(folder: Path) -> Path:
    return _write(folder, "dot.png", encode(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"))


def non_utf8_name(folder: Path) -> Path:
    return _write(folder, b"caf\xe9-latin1.png", encode(pattern(6), "PNG"))


def no_extension(folder: Path) -> Path:
    return _write(folder, "IMG_0001", encode(pattern(7), "JPEG"))


BAD: dict[Callable[[Path], Path], str] = {
    zero_byte: "empty file",
    truncated_jpeg: "cannot decode",
    html_as_jpg: "not an image",
    text_as_jpg: "not an image",
    svg: "not an image",
    decompression_bomb: "CBIR_MAX_PIXELS",
    extreme_aspect: "CBIR_MAX_ASPECT",
    symlink_loop: "cannot read",
    fifo: "not a regular file",
    read_fails: "cannot read",
}
GOOD: list[Callable[[Path], Path]] = [
    png_16_bit,
    cmyk_jpeg,
    palette_transparent,
    exif_rotated,
    animated_gif,
    one_pixel,
    non_utf8_name,
    no_extension,
]
