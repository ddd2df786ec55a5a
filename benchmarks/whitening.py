"""Does PCA whitening of the embeddings help retrieval? The first seed's open TODO, answered by measurement.

Loads a model's stored vectors from the database in use, fits PCA whitening on the whole collection
(centre, rotate onto the principal axes, divide each axis by the square root of its variance, optionally
keep only the first D axes, shrink the division with a power p: p = 1 is full whitening, 0.5 a milder
one), L2-normalises again and runs the same leave-one-out evaluation as `cbir eval` (exact ranking, cosine)
on the raw and on each whitened variant. Prints overall and macro P@1/5/10, mAP@10 and mAP per variant.

    CBIR_HOME=/tmp/eval-home python benchmarks/whitening.py --model efficientnet-lite0
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def whiten(vectors: np.ndarray, dims: int | None, power: float) -> np.ndarray:
    """PCA-whitened, re-normalised rows (fit on the same rows, as a collection-fitted option would be)."""
    centred = vectors - vectors.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2 / (len(vectors) - 1)
    keep = dims or len(variance)
    projected = centred @ axes[:keep].T / np.maximum(variance[:keep], 1e-12) ** (power / 2)
    return projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)


def scores(labels: np.ndarray, vectors: np.ndarray, names: list[str], k: int) -> dict:
    from cbir.analysis.evaluate import rank_leave_one_out, summarise

    queries = np.flatnonzero(labels >= 0)
    ranking = rank_leave_one_out(labels, vectors.astype(np.float32), "cosine", k, queries, seed=0)
    return summarise(labels, ranking, names, k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--variants", default="full:1,256:1,512:1,full:0.5,256:0.5", help="DIMS:POWER, comma-separated")
    args = parser.parse_args()

    from cbir.analysis.evaluate import category_codes, metric_keys
    from cbir.storage import collection, db
    from cbir.storage.models import resolve_model

    with db.connect() as conn:
        model = resolve_model(conn, args.model)
        _, categories, vectors = collection.model_vectors(conn, model)
    labels, names = category_codes(categories)
    keys = metric_keys(args.k)
    print(f"{model.name}: {len(vectors)} images, {vectors.shape[1]} dims, {len(names)} categories")
    print(f"{'variant':<22}{'scope':<9}" + "".join(f"{key:>14}" for key in keys) + f"{'seconds':>9}")
    variants = [("raw", None)] + [(v, v.split(":")) for v in args.variants.split(",")]
    for label, spec in variants:
        start = time.perf_counter()
        rows = vectors
        if spec is not None:
            dims = None if spec[0] == "full" else int(spec[0])
            rows = whiten(vectors.astype(np.float64), dims, float(spec[1]))
            label = f"whiten d={spec[0]} p={spec[1]}"
        result = scores(labels, rows, names, args.k)
        seconds = time.perf_counter() - start
        for scope in ("overall", "macro"):
            values = "".join(f"{result[scope][key]:>14.4f}" for key in keys)
            print(f"{label:<22}{scope:<9}{values}{seconds:>9.1f}")


if __name__ == "__main__":
    main()
