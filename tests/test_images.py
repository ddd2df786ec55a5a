"""Decoding: every kind of picture becomes the RGB image a viewer would show, or a one-line reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support import encode

from cbir.errors import BadImage
from cbir.images import decode


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turns it 90 degrees clockwise
    picture = decode(encode(img, "JPEG", exif=exif, quality=95))
    assert (picture.width, picture.height) == (20, 40)
    top, bottom = picture.rgb.getpixel((10, 5)), picture.rgb.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the red left half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_jpeg_becomes_rgb() -> None:
    white = decode(encode(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), "JPEG", quality=95))
    cyan = decode(encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=95))
    assert white.rgb.mode == "RGB" and min(white.rgb.getpixel((8, 8))) > 240
    r, g, b = cyan.rgb.getpixel((8, 8))
    assert r < 40 and g > 200 and b > 200


def test_transparency_is_composited_on_white() -> None:
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 4, 8))  # left half red, right half index 0 = transparent black
    picture = decode(encode(palette, "PNG", transparency=0))
    assert picture.rgb.getpixel((1, 1)) == (255, 0, 0)
    assert picture.rgb.getpixel((6, 6)) == (255, 255, 255)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))
    assert decode(encode(rgba, "PNG")).rgb.getpixel((3, 3)) == (255, 255, 255)
    la = Image.new("LA", (8, 8), (0, 0))
    assert decode(encode(la, "PNG")).rgb.getpixel((3, 3)) == (255, 255, 255)


def test_16_bit_greyscale_keeps_its_tones() -> None:
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    picture = decode(encode(Image.fromarray(arr), "PNG"))
    assert picture.rgb.getpixel((2, 2)) == (128, 128, 128)  # a plain convert("RGB") would clip it to white


def test_greyscale_becomes_three_equal_channels() -> None:
    picture = decode(encode(Image.new("L", (8, 8), 77), "PNG"))
    assert picture.rgb.mode == "RGB" and picture.rgb.getpixel((0, 0)) == (77, 77, 77)
    assert picture.format == "PNG" and picture.nbytes > 0 and len(picture.sha256) == 64


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"<html><body>not a picture</body></html>", "not an image"),
        (encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:100], "cannot decode"),
    ],
)
def test_unusable_files_give_one_line_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage, match=reason) as info:
        decode(data)
    assert "\n" not in str(info.value)
