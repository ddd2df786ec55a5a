"""How well each model finds copies: transformed copies of real Caltech-101 photos, precision and recall.

A seeded sample of photos is the collection; the first `--originals` of them get 12 transformed copies each
(resize 50%, thumbnail 128 px, upscale 2x, JPEG q30, PNG and WebP re-encodes, centre crop 90%, brightness,
contrast, greyscale, rotate 5 degrees, mirror). Each copy is a query against the collection, through the
model's own embedder and the same distances as `cbir dupes`. pixels-umap is measured twice: fitted on the
collection, with copies placed by its saved reducer (an upload, `cbir dupes --of`), and fitted on the
collection with the copies and unrelated photos in it (the seed's setting, `cbir dupes` grouping).
A copy counts as found when its original is within the model's `cbir dupes` threshold; precision is the
share of returned images that are the original; top-1 is whether the nearest image is the original,
whatever the threshold. Photos outside the collection measure false alarms.

    python benchmarks/duplicates.py                     # 1,000 photos, 100 originals, phash and pixels-umap
    python benchmarks/duplicates.py --collection 60 --originals 5 --negatives 5 --models phash   # smoke run
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CALTECH = ROOT.parent / "shared" / "datasets" / "caltech101"


UNRELATED = "unrelated photos (false alarms)"


def _encode(img: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def _scaled(img: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
    return img.resize(size, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC)


def _thumbnail(img: Image.Image, side: int = 128) -> Image.Image:
    thumb = img.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return thumb


def _crop(img: Image.Image, keep: float = 0.9) -> Image.Image:
    dx, dy = round(img.width * (1 - keep) / 2), round(img.height * (1 - keep) / 2)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


# name -> bytes of a copy of an RGB image (JPEG q90 unless the transform is an encoding)
TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "resize 50%": lambda im: _encode(_scaled(im, 0.5), quality=90),
    "thumbnail 128 px": lambda im: _encode(_thumbnail(im), quality=90),
    "upscale 2x": lambda im: _encode(_scaled(im, 2.0), quality=90),
    "JPEG q30": lambda im: _encode(im, quality=30),
    "PNG re-encode": lambda im: _encode(im, "PNG"),
    "WebP re-encode": lambda im: _encode(im, "WEBP", quality=80),
    "crop 90%": lambda im: _encode(_crop(im), quality=90),
    "brightness +30%": lambda im: _encode(ImageEnhance.Brightness(im).enhance(1.3), quality=90),
    "contrast +30%": lambda im: _encode(ImageEnhance.Contrast(im).enhance(1.3), quality=90),
    "greyscale": lambda im: _encode(ImageOps.grayscale(im), quality=90),
    "rotate 5 degrees": lambda im: _encode(im.rotate(5, resample=Image.Resampling.BICUBIC), quality=90),
    "mirror": lambda im: _encode(ImageOps.mirror(im), quality=90),
}


def transformed_copies(img: Image.Image) -> dict[str, bytes]:
    """Every transform's copy of one RGB image, as file bytes."""
    return {name: make(img) for name, make in TRANSFORMS.items()}


def sample_files(n_collection: int, n_negatives: int, seed: int) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in CALTECH.rglob("*") if p.is_file())
    if len(files) < n_collection + n_negatives:
        raise SystemExit(f"need {n_collection + n_negatives} photos under {CALTECH}, found {len(files)}")
    picked = np.random.default_rng(seed).choice(len(files), n_collection + n_negatives, replace=False)
    return [files[i] for i in picked[:n_collection]], [files[i] for i in picked[n_collection:]]


def embed_collection(name: str, images: list[Image.Image]) -> np.ndarray:
    """Vectors of the collection; a collection-fitted model is fitted on it (reducer saved in CBIR_HOME)."""
    from cbir.embedders import get_embedder

    embedder = get_embedder(name)
    if embedder.fitted_on_collection:
        rows = embedder.inputs(embedder.prepare(images))
        return embedder.fit([row.tobytes() for row in rows])[0]
    return embedder.embed(images)


def measure(
    stored: np.ndarray, queries: dict[str, np.ndarray], unrelated: np.ndarray, metric: str, threshold: float
) -> dict[str, dict[str, float]]:
    """Scores per transform, and how often unrelated photos match anything, from ready vectors."""
    from cbir.distances import distance_block

    originals = np.arange(len(next(iter(queries.values()))))
    rows = {t: score(distance_block(q, stored, metric), originals, threshold) for t, q in queries.items()}
    nearest = distance_block(unrelated, stored, metric).min(axis=1)
    rows[UNRELATED] = {
        "false_alarm_rate": float((nearest <= threshold).mean()),
        "nearest_distance_p5": float(np.percentile(nearest, 5)),
        "nearest_distance_median": float(np.median(nearest)),
    }
    return rows


def score(distances: np.ndarray, originals: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision and recall of 'within threshold' for copies of known originals, and top-1 accuracy."""
    returned = distances <= threshold
    found = returned[np.arange(len(originals)), originals]
    total = returned.sum()
    return {
        "precision": float(found.sum() / total) if total else float("nan"),
        "recall": float(found.mean()),
        "top1": float((distances.argmin(axis=1) == originals).mean()),
        "median_distance": float(np.median(distances[np.arange(len(originals)), originals])),
    }


def run(args: argparse.Namespace) -> dict:
    from cbir.embedders import get_embedder
    from cbir.images import decode
    from cbir.retrieval.copies import default_threshold

    collection_files, negative_files = sample_files(args.collection, args.negatives, args.seed)
    images = [decode(p.read_bytes()).rgb for p in collection_files]
    negatives = [decode(p.read_bytes()).rgb for p in negative_files]
    copies = {name: [] for name in TRANSFORMS}
    for img in images[: args.originals]:
        for name, data in transformed_copies(img).items():
            copies[name].append(decode(data).rgb)
    results: dict = {"collection": len(images), "originals": args.originals, "negatives": len(negatives), "models": {}}
    for name in args.models:
        embedder = get_embedder(name)
        metric = embedder.metric
        threshold = args.threshold.get(name, default_threshold(name))
        stored = embed_collection(name, images)
        uploaded = {t: embedder.embed(copied) for t, copied in copies.items()}
        rows = measure(stored, uploaded, embedder.embed(negatives), metric, threshold)
        results["models"][name] = {"threshold": threshold, "metric": metric, "rows": rows}
        if embedder.fitted_on_collection:  # the seed's setting: copies are part of the collection it is fitted on
            everything = images + [img for copied in copies.values() for img in copied] + negatives
            vectors = embed_collection(name, everything)
            n, per = len(images), args.originals
            inside = {t: vectors[n + i * per : n + (i + 1) * per] for i, t in enumerate(copies)}
            rows = measure(vectors[:n], inside, vectors[-len(negatives) :], metric, threshold)
            results["models"][f"{name} (copies stored)"] = {"threshold": threshold, "metric": metric, "rows": rows}
    return results


def table(results: dict) -> str:
    models = list(results["models"])
    head = "| transform | " + " | ".join(f"{m} precision | {m} recall | {m} top-1" for m in models) + " |"
    lines = [head, "|---|" + "---:|" * (3 * len(models))]
    for transform in TRANSFORMS:
        cells = []
        for m in models:
            r = results["models"][m]["rows"][transform]
            precision = "-" if np.isnan(r["precision"]) else f"{r['precision']:.2f}"
            cells += [precision, f"{r['recall']:.2f}", f"{r['top1']:.2f}"]
        lines.append(f"| {transform} | " + " | ".join(cells) + " |")
    alarms = [f"{results['models'][m]['rows'][UNRELATED]['false_alarm_rate']:.2f}" for m in models]
    lines.append("| unrelated photos: share with any match | " + " | ".join(f"{a} | | " for a in alarms) + "|")
    thresholds = ", ".join(
        f"{m} <= {results['models'][m]['threshold']:g} ({results['models'][m]['metric']})" for m in models
    )
    return "\n".join(lines) + f"\n\nthresholds: {thresholds}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=int, default=1000, help="photos in the collection")
    parser.add_argument("--originals", type=int, default=100, help="photos copied (from the collection)")
    parser.add_argument("--negatives", type=int, default=100, help="photos outside the collection")
    parser.add_argument("--models", type=lambda s: s.split(","), default=["phash", "pixels-umap"])
    parser.add_argument(
        "--threshold",
        type=lambda s: {k: float(v) for k, v in (p.split("=") for p in s.split(","))},
        default={},
        help="e.g. phash=10,pixels-umap=0.2 (default: cbir dupes's defaults)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.originals > args.collection:
        parser.error("--originals must not exceed --collection")
    with tempfile.TemporaryDirectory() as home:
        os.environ["CBIR_HOME"] = home  # pixels-umap's reducer goes here, not into the user's collection
        results = run(args)
    print(
        f"{results['collection']} photos in the collection, {results['originals']} originals x {len(TRANSFORMS)} "
        f"transforms, {results['negatives']} unrelated photos (seed {args.seed})\n"
    )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
