"""pixels-umap: the second seed's copy finder (greyscale 64x64 pixels, flattened, reduced with UMAP).

UMAP is fitted on the whole collection (min_dist 0.0, so similar images clump together), which means no
vector exists until every image has been read: ingest stores the 4096 pixels per image in `model_inputs`,
then calls `fit` once at the end of the run and swaps in the vectors of every image. The fitted reducer is
saved under CBIR_HOME (models/pixels-umap.joblib) so uploaded query images can be transformed later.
Vectors are UMAP coordinates, compared by Euclidean distance (UMAP preserves neighbourhoods in that metric).
umap is imported lazily: importing it costs ~20 s and its first fit compiles for ~50 s.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cbir.config import settings
from cbir.distances import L2
from cbir.embedders.base import Embedder
from cbir.errors import ModelNotFound, NotEnoughImages
from cbir.metrics import SCORE_K, score_sample, trustworthiness

SIDE = 64
N_COMPONENTS = 16
N_NEIGHBORS = 15
MIN_DIST = 0.0
SEED = 42
MIN_IMAGES = N_COMPONENTS + 4  # spectral initialisation needs more points than dimensions


def reducer_path() -> Path:
    return settings().home / "models" / "pixels-umap.joblib"


def pixels(img: Image.Image) -> np.ndarray:
    """Greyscale, resized to 64x64 (aspect ratio ignored, as in the seed), flattened: 4096 uint8 values."""
    return np.asarray(img.convert("L").resize((SIDE, SIDE), Image.Resampling.BICUBIC), dtype=np.uint8).reshape(-1)


class PixelsUmapEmbedder(Embedder):
    name = "pixels-umap"
    kind = "vector"
    dim = N_COMPONENTS
    metric = L2
    fitted_on_collection = True

    def __init__(self) -> None:
        self._loaded: tuple[tuple[str, float], Any] | None = None

    def prepare(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([pixels(img) for img in images]) if images else np.zeros((0, SIDE * SIDE), np.uint8)

    def inputs(self, prepared: np.ndarray) -> np.ndarray:
        return prepared

    def forward(self, prepared: np.ndarray) -> np.ndarray:
        """Place new images in the fitted UMAP space (used for query images that are not stored)."""
        return self._reducer().transform(_scaled(prepared)).astype(np.float32)

    def fit(self, inputs: list[bytes]) -> tuple[np.ndarray, dict[str, Any]]:
        if len(inputs) < MIN_IMAGES:
            raise NotEnoughImages(
                f"pixels-umap is fitted on the collection and needs at least {MIN_IMAGES} images; "
                f"{len(inputs)} stored so far: ingest more images with --model pixels-umap"
            )
        import joblib
        import umap

        data = _scaled(np.stack([np.frombuffer(b, dtype=np.uint8) for b in inputs]))
        reducer = umap.UMAP(
            n_components=N_COMPONENTS, n_neighbors=N_NEIGHBORS, min_dist=MIN_DIST, random_state=SEED, verbose=False
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # seeded: 1 thread
            vectors = reducer.fit_transform(data).astype(np.float32)
        path = reducer_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        joblib.dump(reducer, tmp)
        tmp.replace(path)  # atomic: a query never loads a half-written reducer
        self._loaded = None
        return vectors, {"trustworthiness": _trustworthiness(data, vectors)}

    def is_fitted(self) -> bool:
        return reducer_path().is_file()

    def _reducer(self) -> Any:
        path = reducer_path()
        try:
            key = (str(path), path.stat().st_mtime)
        except FileNotFoundError:
            raise ModelNotFound(
                f"pixels-umap has no fitted reducer at {path}; run `cbir ingest PATH --model pixels-umap` first"
            ) from None
        if self._loaded is None or self._loaded[0] != key:
            import joblib

            self._loaded = (key, joblib.load(path))
        return self._loaded[1]

    def info(self) -> dict[str, Any]:
        return {
            "source": "builtin",
            "method": "greyscale 64x64 pixels -> UMAP",
            "n_components": N_COMPONENTS,
            "n_neighbors": N_NEIGHBORS,
            "min_dist": MIN_DIST,
            "random_state": SEED,
        }


def _scaled(pixels_u8: np.ndarray) -> np.ndarray:
    return pixels_u8.astype(np.float32) / 255.0


def _trustworthiness(data: np.ndarray, vectors: np.ndarray) -> dict[str, Any]:
    """How well the fit keeps pixel-space neighbourhoods (scikit-learn's score on a seeded sample; 1 = all)."""
    sample = score_sample(len(data), SEED)
    score = trustworthiness(data, vectors, sample, L2)
    return {"score": round(score, 4), "n_neighbors": SCORE_K, "sample": len(sample)}
