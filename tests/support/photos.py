"""Camera files made with real encoders from real pixels: HEIC/HEIF (pillow-heif), DNG (tifffile with the DNG
tags LibRaw reads) and EXIF (piexif), for the photo-library tests and benchmarks/raw_pairs.py.

The DNG is a genuine Bayer mosaic: the sRGB pixels are linearised and sampled through an RGGB colour filter
array into 12-bit values, with a colour matrix that makes the camera's primaries sRGB's, so LibRaw's demosaic
gives back (nearly) the original picture. Its optional preview is an uncompressed RGB image in IFD0, the
raw data in a SubIFD, as cameras and Adobe's converter lay them out.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import piexif
import pillow_heif
import tifffile
from PIL import Image

from support import encode

WHITE_LEVEL = 4095  # 12-bit sensor values
# XYZ (D65) -> linear sRGB: DNG's ColorMatrix1 maps XYZ to camera space, and this camera's space is sRGB's.
XYZ_TO_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]


def heif_bytes(img: Image.Image, exif: bytes | None = None, quality: int = 90) -> bytes:
    """HEIC (HEVC in HEIF) from pillow-heif; an EXIF orientation becomes HEIF's own rotation, as phones do."""
    pillow_heif.register_heif_opener()
    return encode(img, "HEIF", quality=quality, **({"exif": exif} if exif else {}))


def exif_bytes(
    taken: datetime | None = None,
    offset: str | None = None,
    make: str | None = None,
    model: str | None = None,
    orientation: int | None = None,
    gps: tuple[float, float, float] | None = None,
    raw: dict[str, dict[int, object]] | None = None,
) -> bytes:
    """EXIF written by piexif: time taken (and UTC offset), camera, orientation, GPS (lat, lon, altitude m)."""
    ifds: dict[str, dict[int, object]] = {"0th": {}, "Exif": {}, "GPS": {}}
    if taken is not None:
        ifds["Exif"][piexif.ExifIFD.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S").encode()
    if offset is not None:
        ifds["Exif"][piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
    if make is not None:
        ifds["0th"][piexif.ImageIFD.Make] = make.encode()
    if model is not None:
        ifds["0th"][piexif.ImageIFD.Model] = model.encode()
    if orientation is not None:
        ifds["0th"][piexif.ImageIFD.Orientation] = orientation
    if gps is not None:
        lat, lon, alt = gps
        ifds["GPS"] |= {
            piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
            piexif.GPSIFD.GPSLatitude: dms(abs(lat)),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
            piexif.GPSIFD.GPSLongitude: dms(abs(lon)),
            piexif.GPSIFD.GPSAltitudeRef: 0 if alt >= 0 else 1,
            piexif.GPSIFD.GPSAltitude: (round(abs(alt) * 100), 100),
        }
    for ifd, tags in (raw or {}).items():
        ifds[ifd] |= tags
    return piexif.dump(ifds)


def dms(degrees: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """EXIF degrees, minutes, seconds rationals (seconds to 1/10000)."""
    d = int(degrees)
    m = int((degrees - d) * 60)
    s = round(((degrees - d) * 60 - m) * 60 * 10000)
    return (d, 1), (m, 1), (s, 10000)


def bayer(rgb: Image.Image) -> np.ndarray:
    """RGGB mosaic of the linearised pixels, 12-bit (even width and height)."""
    x = np.asarray(rgb.convert("RGB"), dtype=np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    h, w = lin.shape[0] // 2 * 2, lin.shape[1] // 2 * 2
    lin = lin[:h, :w]
    cfa = np.empty((h, w))
    cfa[0::2, 0::2], cfa[0::2, 1::2] = lin[0::2, 0::2, 0], lin[0::2, 1::2, 1]
    cfa[1::2, 0::2], cfa[1::2, 1::2] = lin[1::2, 0::2, 1], lin[1::2, 1::2, 2]
    return np.round(cfa * WHITE_LEVEL).astype(np.uint16)


def dng_bytes(
    rgb: Image.Image,
    preview: Image.Image | None = None,
    orientation: int = 1,
    make: str = "Cbir",
    model: str = "Test Camera",
    taken: datetime | None = None,
) -> bytes:
    """A DNG 1.4 of `rgb` as sensor data, with `preview` as its embedded preview (None: no preview)."""
    camera = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (50708, "s", 0, f"{make} {model}", True),  # UniqueCameraModel
        (274, "H", 1, orientation, True),
        (50721, "2i", 9, [v for c in XYZ_TO_SRGB for v in (round(c * 10000), 10000)], True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral: white is (1, 1, 1)
    ]
    if taken is not None:
        camera.append((36867, "s", 0, taken.strftime("%Y:%m:%d %H:%M:%S"), True))  # DateTimeOriginal (TIFF/EP)
    sensor = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50717, "I", 1, WHITE_LEVEL, True),  # WhiteLevel
    ]
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tif:
        if preview is None:
            tif.write(bayer(rgb), photometric=32803, subfiletype=0, extratags=camera + sensor)
        else:
            tif.write(np.asarray(preview.convert("RGB")), photometric="rgb", subfiletype=1, subifds=1, extratags=camera)
            tif.write(bayer(rgb), photometric=32803, subfiletype=0, extratags=sensor)
    return out.getvalue()


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0-255) after resizing b to a's size."""
    b = b.convert("RGB").resize(a.size, Image.Resampling.BILINEAR)
    return float(np.abs(np.asarray(a.convert("RGB"), dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())
