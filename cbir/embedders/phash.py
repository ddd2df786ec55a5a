"""pHash: a 64-bit perceptual hash (ImageHash), the classic near-duplicate fingerprint.

Stored as bit(64) and compared by Hamming distance through an HNSW `bit_hamming_ops` index. It is a
baseline for copy finding (resizes, re-encodes, small edits), not a semantic model.
"""

from __future__ import annotations

from typing import Any

import imagehash
import numpy as np
from PIL import Image

from cbir.distances import HAMMING
from cbir.embedders.base import Embedder

HASH_SIZE = 8  # 8x8 DCT low frequencies -> 64 bits


class PHashEmbedder(Embedder):
    name = "phash"
    kind = "bit"
    dim = HASH_SIZE * HASH_SIZE
    metric = HAMMING

    def forward(self, prepared: list[Image.Image]) -> np.ndarray:
        rows = [imagehash.phash(img, hash_size=HASH_SIZE).hash.reshape(-1) for img in prepared]
        return np.asarray(rows, dtype=bool).reshape(len(rows), self.dim)

    def info(self) -> dict[str, Any]:
        return {"source": "imagehash", "method": "phash", "hash_size": HASH_SIZE}
