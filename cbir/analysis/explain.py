"""Why did two images match: each feature-map position's share of their cosine similarity.

An embedding that is the mean of a (h, w, c) feature map over its P = h*w positions is linear in the positions, so
the cosine between image A's pooled vector `a` and another vector `b` splits exactly into per-position terms:

    cos(a, b) = sum_p features[p] . b_hat / (P * ||a||),    b_hat = b / ||b||

`contribution_map` returns those terms; the map sums to the cosine of the pair. Between two images of a ReLU6
model every term is >= 0 (features and pooled vectors are non-negative), so the map shows where the similarity
comes from; negative terms arise only against vectors with negative entries. A per-position cosine would not do:
it ignores how strongly each position fires and is undefined where the features are all zero (plain background).

`match_maps` feeds the model the whole image (no centre crop, aspect kept, short side 224, sides rounded to the
network's 32-pixel grid), so the map covers the thumbnail an analyst sees, cell for cell. Its cosine is therefore
that of the uncropped views and may differ a little from the search score, which uses the centre crop.

`explain(model_name, image_a, image_b)` is what pages call: it loads the model by name and returns a `Match`. Models
whose vector is not pooled from positions (phash, pixels-umap, CLIP-like projections) raise NoSpatialFeatures.
For CLS-pooled ViTs (DINOv2) the maps are over patch tokens and explain the cosine of the mean patch tokens, an
approximation of what the CLS token attends to (cbir.embedders.hf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from cbir.embedders import Embedder, get_embedder


class SpatialEmbedder(Protocol):
    """A model whose embedding is the mean over positions of `spatial_features` (EfficientNetLiteEmbedder)."""

    def prepare(self, images: list[Image.Image], crop: bool = True) -> object: ...

    def spatial_features(self, prepared: object) -> np.ndarray: ...


def contribution_map(features: np.ndarray, other_vector: np.ndarray) -> np.ndarray:
    """(h, w) float64: each position's term of cos(mean of `features`, `other_vector`); sums to that cosine.

    Zero vectors (an all-zero feature map, or `other_vector` of norm 0) give a map of zeros, not NaN.
    """
    features = np.asarray(features, dtype=np.float64)
    other = np.asarray(other_vector, dtype=np.float64)
    h, w, c = features.shape
    if other.shape != (c,):
        raise ValueError(f"other_vector has shape {other.shape}, expected ({c},)")
    pooled_norm = float(np.linalg.norm(features.reshape(-1, c).mean(axis=0)))
    other_norm = float(np.linalg.norm(other))
    if pooled_norm == 0.0 or other_norm == 0.0:
        return np.zeros((h, w))
    return features @ (other / other_norm) / (h * w * pooled_norm)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norms) if norms > 0 else 0.0


def match_maps(
    embedder: SpatialEmbedder, image_a: Image.Image, image_b: Image.Image
) -> tuple[np.ndarray, np.ndarray, float]:
    """(map of A against B, map of B against A, cosine of the pair); each map sums to that cosine."""
    feats_a, feats_b = (
        np.asarray(embedder.spatial_features(embedder.prepare([image], crop=False))[0], dtype=np.float64)
        for image in (image_a, image_b)
    )
    pooled_a = feats_a.reshape(-1, feats_a.shape[-1]).mean(axis=0)
    pooled_b = feats_b.reshape(-1, feats_b.shape[-1]).mean(axis=0)
    return contribution_map(feats_a, pooled_b), contribution_map(feats_b, pooled_a), _cosine(pooled_a, pooled_b)


@dataclass(frozen=True)
class Match:
    """Where two images' similarity comes from: one map per image, each summing to `cosine`."""

    model: str
    map_a: np.ndarray  # (h, w) float64: each cell's term of the cosine, A's positions against B's pooled vector
    map_b: np.ndarray
    cosine: float  # of the pooled features of the uncropped images (not the search score; see the module notes)

    @property
    def grid_a(self) -> tuple[int, int]:
        return self.map_a.shape  # type: ignore[return-value]

    @property
    def grid_b(self) -> tuple[int, int]:
        return self.map_b.shape  # type: ignore[return-value]


def explain(model: str | Embedder, image_a: Image.Image, image_b: Image.Image) -> Match:
    """The match maps of two images under a model (a name, loaded once per process, or a loaded embedder)."""
    embedder = get_embedder(model) if isinstance(model, str) else model
    if not embedder.has_spatial_features:
        raise embedder.no_spatial_features()
    map_a, map_b, cosine = match_maps(embedder, image_a.convert("RGB"), image_b.convert("RGB"))  # type: ignore[arg-type]
    return Match(model=embedder.name, map_a=map_a, map_b=map_b, cosine=cosine)
