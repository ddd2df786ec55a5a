"""Why two images match, drawn: each image under its contribution map (cbir.analysis.explain).

A cell's heat is its positive share of the pair's cosine, scaled to the image's strongest cell, upsampled to the
picture (bilinear) and blended over it with a colour map; negative shares (possible for models with signed
features, such as DINOv2's patch tokens) show as no heat. No matplotlib here, so the colour map is a small table.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from cbir.analysis.explain import Match, explain
from cbir.dashboard import ui
from cbir.errors import NoSpatialFeatures

SHOWN_SIDE = 480  # pixels: pictures are shrunk to this before blending (the page shows them smaller anyway)
# matplotlib's "inferno" at 8 evenly spaced points: dark to bright, readable in grey and by most colour-blind eyes.
INFERNO = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
     [252, 255, 164]], dtype=np.float64,
)  # fmt: skip


def colours(heat: np.ndarray) -> np.ndarray:
    """(h, w, 3) float RGB of heat in [0, 1], interpolated along INFERNO."""
    stops = np.linspace(0.0, 1.0, len(INFERNO))
    return np.stack([np.interp(heat, stops, INFERNO[:, channel]) for channel in range(3)], axis=-1)


def overlay(image: Image.Image, contributions: np.ndarray, side: int = SHOWN_SIDE) -> Image.Image:
    """The picture (shrunk to `side`) with its contribution map stretched over it: the map covers the whole image."""
    picture = image.convert("RGB")
    picture.thumbnail((side, side))
    heat = np.clip(np.asarray(contributions, dtype=np.float32), 0.0, None)
    top = float(heat.max()) if heat.size else 0.0
    heat = heat / top if top > 0 else np.zeros_like(heat)
    stretched = np.asarray(Image.fromarray(heat).resize(picture.size, Image.Resampling.BILINEAR))
    stretched = np.clip(stretched, 0.0, 1.0)
    alpha = (0.15 + 0.6 * stretched)[..., None]  # cold cells keep the photo visible
    blended = np.asarray(picture, dtype=np.float64) * (1 - alpha) + colours(stretched) * alpha
    return Image.fromarray(np.clip(blended.round(), 0, 255).astype(np.uint8))


def show_match(
    model: str, image_a: Image.Image, image_b: Image.Image, labels: tuple[str, str] = ("query", "result")
) -> Match | None:
    """Both images side by side under their heatmaps, and the pair's cosine; one info line for models without any."""
    try:
        match = explain(ui.embedder(model), image_a, image_b)
    except NoSpatialFeatures as exc:
        st.info(str(exc), icon=":material/info:")
        return None
    columns = st.columns(2)
    for column, image, contributions, label in zip(
        columns, (image_a, image_b), (match.map_a, match.map_b), labels, strict=True
    ):
        rows, cols = contributions.shape
        column.image(overlay(image, contributions), caption=f"{label} ({rows}x{cols} cells)", width="stretch")
    st.caption(
        f"Cosine of the pair's pooled features, uncropped: {match.cosine:.3f}. Bright cells contribute most to it; "
        "each map sums to it. It can differ from the search score, which uses the model's crop (and, for "
        "CLS-pooled models such as DINOv2, the CLS token rather than the patch tokens mapped here)."
    )
    return match
