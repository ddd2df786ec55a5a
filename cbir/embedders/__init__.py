"""Models, by name: a built-in method, or any Hugging Face Hub id or local model directory.

Every model implements the one `Embedder` interface (base.py); `get_embedder(name)` is the entry point.

- base: the `Embedder` interface every model implements
- efficientnet_lite: EfficientNet-Lite0 (ImageNet-trained), the built-in genuine model
- hf: Hugging Face vision backbones (DINOv2 by default) through AutoModel
- phash: a 64-bit perceptual hash, the classic near-duplicate fingerprint
- pixels_umap: greyscale pixels reduced with UMAP (the second seed's copy finder)
- random_model: a randomly initialised DINOv2 saved for tests and benchmarks
- runtime: OpenVINO for vector models' forward pass on the CPU (PyTorch the fallback)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from cbir.config import settings
from cbir.embedders.base import Embedder


def _phash() -> Embedder:
    from cbir.embedders.phash import PHashEmbedder

    return PHashEmbedder()


def _pixels_umap() -> Embedder:
    from cbir.embedders.pixels_umap import PixelsUmapEmbedder

    return PixelsUmapEmbedder()


def _efficientnet_lite0() -> Embedder:
    from cbir.embedders.efficientnet_lite import EfficientNetLiteEmbedder

    s = settings()
    return EfficientNetLiteEmbedder(device=s.device, precision=s.precision)


# Built-in, non-Hugging-Face methods register here by name (imported on first use: umap and torch are slow
# to import).
BUILTINS: dict[str, Callable[[], Embedder]] = {
    "phash": _phash,
    "pixels-umap": _pixels_umap,
    "efficientnet-lite0": _efficientnet_lite0,
}


@cache
def get_embedder(name: str) -> Embedder:
    """Load a model once per process (loading is the slow part of a query)."""
    if name in BUILTINS:
        return BUILTINS[name]()
    from cbir.embedders.hf import HuggingFaceEmbedder

    return HuggingFaceEmbedder(name)


def canonical_name(name: str) -> str:
    """The name stored in the database: built-ins and Hub ids as given, local directories as absolute paths."""
    if name in BUILTINS:
        return name
    from cbir.embedders.hf import resolve_source

    return resolve_source(name)[0]


__all__ = ["Embedder", "get_embedder", "canonical_name", "BUILTINS"]
