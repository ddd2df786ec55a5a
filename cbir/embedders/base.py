"""The one interface every model implements, so ingest, search and eval treat all models alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from PIL import Image

from cbir.distances import COSINE
from cbir.errors import NoSpatialFeatures


class Embedder(ABC):
    """Maps RGB images to fixed-size vectors (kind 'vector') or bit strings (kind 'bit').

    `prepare` is CPU work that may run in worker threads (decode-side preprocessing); `forward` runs the
    model on a prepared batch. Splitting them lets ingest overlap preprocessing with inference.
    """

    name: str
    kind: str = "vector"
    dim: int
    metric: str = COSINE  # cbir.distances: cosine for unit vectors, l2 for coordinates, hamming for bits
    # True for models fitted on the whole collection (pixels-umap): ingest stores `inputs` per image and calls
    # `fit` on all of them at the end of the run, since no vector exists before the fit.
    fitted_on_collection: bool = False

    def prepare(self, images: list[Image.Image]) -> Any:
        return images

    @abstractmethod
    def forward(self, prepared: Any) -> np.ndarray:
        """(n, dim) float32 rows, L2-normalised, for 'vector'; (n, dim) bool for 'bit'."""

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        return self.forward(self.prepare(images))

    def inputs(self, prepared: Any) -> np.ndarray:
        """What a collection-fitted model stores per image before its fit (one row per image)."""
        raise NotImplementedError(f"{self.name} is not fitted on the collection")

    def fit(self, inputs: list[bytes]) -> tuple[np.ndarray, dict[str, Any]]:
        """Fit on every stored input (as bytes from `inputs` rows), persist; all vectors and facts of the fit."""
        raise NotImplementedError(f"{self.name} is not fitted on the collection")

    def is_fitted(self) -> bool:
        """Whether a persisted fit exists (always true for models that need none)."""
        return True

    def spatial_features(self, prepared: Any) -> np.ndarray:
        """(n, h, w, c) features whose mean over positions is what the model pools, so `cbir.analysis.explain`
        can map where a match comes from. Models must take `prepare(images, crop=False)` to implement it."""
        raise self.no_spatial_features()

    def no_spatial_features(self) -> NoSpatialFeatures:
        return NoSpatialFeatures(
            f"{self.name} has no spatial features (its vector is not pooled from image positions), "
            "so no heatmap can show why two images match"
        )

    @property
    def has_spatial_features(self) -> bool:
        """Whether `spatial_features` works: checked before preparing, since only such models take `crop=`."""
        return type(self).spatial_features is not Embedder.spatial_features

    def info(self) -> dict[str, Any]:
        """Facts stored with the model row (pooling, preprocessing, ...)."""
        return {}


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
