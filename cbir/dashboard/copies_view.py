"""Drawing the evidence of a verified copy: the matched region outlined on the copy and on its original, with
the keypoints that agree, so an analyst sees what matched rather than trusting a number."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cbir.retrieval.verify import Match

SIDE = 420  # pixels: shown pictures are shrunk to this longest side before drawing
OUTLINE = (255, 64, 64)
POINT = (255, 214, 0)


def outlined(picture: Image.Image, region: np.ndarray, points: np.ndarray, side: int = SIDE) -> Image.Image:
    """A copy of the picture (longest side at most `side`) with the region's outline and the points drawn."""
    factor = min(1.0, side / max(picture.size))
    shown = picture.convert("RGB").resize(
        (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    )
    draw = ImageDraw.Draw(shown)
    width = max(2, round(max(shown.size) / 150))
    if len(region) >= 3:
        corners = [tuple(p) for p in (region * factor).tolist()]
        draw.line([*corners, corners[0]], fill=OUTLINE, width=width, joint="curve")
    r = max(1.5, width * 0.8)
    for x, y in (points * factor).tolist():
        draw.ellipse((x - r, y - r, x + r, y + r), outline=POINT)
    return shown


def evidence(copy: Image.Image, original: Image.Image, match: Match) -> tuple[Image.Image, Image.Image]:
    """The copy and the original, each with the part they share outlined and their agreeing keypoints."""
    return (
        outlined(copy, match.copy_region(), match.copy_points),
        outlined(original, match.original_region(), match.original_points),
    )
