"""How often `cbir dupes` finds a RAW file and its camera JPEG (the same shot, two files) as near-duplicates.

A seeded sample of Caltech-101 photos stands for the shots. Each becomes four files, written with real encoders
(tests/support/photos.py): the camera JPEG (the Caltech file itself) beside a DNG of the same pixels as a Bayer
mosaic with no preview (cbir demosaics it), and a 2x JPEG (q92) beside a 2x DNG with an embedded full-size
preview (cbir uses the preview; 3x or more where 2x would leave the preview under its 256-pixel minimum).
Everything is ingested into a temporary database; a pair counts as found when
`cbir.retrieval.copies.near_duplicates` (what `cbir dupes` prints) puts the JPEG and its DNG in one group
(groups form around leaders, so a pair can be within the threshold yet split between two groups), and
*within threshold* when the JPEG is within the model's default threshold of its DNG (what `cbir dupes --of`
needs to return it; distances through the model's index). A DNG in a group with a file of another shot is a
false pairing.

    python benchmarks/raw_pairs.py                          # 100 shots, phash and efficientnet-lite0
    python benchmarks/raw_pairs.py --shots 3 --models phash # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the DNG writer the tests use: support.photos
CALTECH = ROOT.parent / "shared" / "datasets" / "caltech101"
LEFT_OUT = {"Faces_easy", "BACKGROUND_Google"}  # crops of Faces; genuine copies of one another
VARIANTS = ("demosaic", "preview")


def sample(shots: int, seed: int) -> list[Path]:
    files = sorted(p for p in CALTECH.glob("*/*.jpg") if p.parent.name not in LEFT_OUT)
    return random.Random(seed).sample(files, shots)


def write_shots(photos: list[Path], folder: Path) -> list[dict[str, Path]]:
    """The four files of each shot: {variant: (jpeg, dng)} as paths."""
    from support.photos import dng_bytes, encode

    from cbir.images import RAW_PREVIEW_MIN_SIDE

    shots = []
    for n, photo in enumerate(photos):
        img = Image.open(photo).convert("RGB")
        scale = max(2, math.ceil(RAW_PREVIEW_MIN_SIDE / min(img.size)))
        big = img.resize((img.width * scale, img.height * scale), Image.Resampling.LANCZOS)
        files = {
            "demosaic-jpeg": (folder / f"{n:04d}-camera.jpg", photo.read_bytes()),
            "demosaic-dng": (folder / f"{n:04d}-raw.dng", dng_bytes(img)),
            "preview-jpeg": (folder / f"{n:04d}-camera-2x.jpg", encode(big, "JPEG", quality=92)),
            "preview-dng": (folder / f"{n:04d}-raw-2x.dng", dng_bytes(big, preview=big)),
        }
        for path, data in files.values():
            path.write_bytes(data)
        shots.append({name: path for name, (path, _) in files.items()})
    return shots


def measure(model: str, shots: list[dict[str, Path]], folder: Path) -> dict:
    from cbir.indexing.ingest import display_path, ingest
    from cbir.retrieval import copies
    from cbir.storage import db
    from cbir.storage.collection import stored_vector
    from cbir.storage.models import resolve_model
    from cbir.storage.neighbours import nearest

    report = ingest([folder], model, progress=False)
    with db.connect() as conn:
        model_row = resolve_model(conn, model)
        ids = {r[1]: r[0] for r in conn.execute("SELECT image_id, path FROM image_paths").fetchall()}
        groups = copies.near_duplicates(conn, model_row)
        group_of = {m.id: g for g, group in enumerate(groups) for m in group.members}
        shot_of = {ids[display_path(p)]: n for n, shot in enumerate(shots) for p in shot.values()}
        result = {"ingest": {"raw_previews": report.raw_previews, "raw_demosaiced": report.raw_demosaiced}}
        for variant in VARIANTS:
            found = within = false = 0
            distances = []
            for n, shot in enumerate(shots):
                jpeg, dng = ids[display_path(shot[f"{variant}-jpeg"])], ids[display_path(shot[f"{variant}-dng"])]
                group = group_of.get(dng)
                found += group is not None and group_of.get(jpeg) == group
                if group is not None:
                    false += any(shot_of[m.id] != n for m in groups[group].members)
                vector = stored_vector(conn, model_row, dng)
                hits = nearest(conn, model_row, vector, k=len(shots) * 4, exclude=[dng])
                distance = next((h.distance for h in hits if h.id == jpeg), float("inf"))
                distances.append(distance)
                within += distance <= copies.default_threshold(model_row.name)
            result[variant] = {
                "pairs": len(shots),
                "found_by_dupes": found,
                "within_threshold": within,
                "false_pairings": false,
                "median_distance": statistics.median(distances),
                "threshold": copies.default_threshold(model_row.name),
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=100, help="Caltech-101 photos, four files each")
    parser.add_argument("--models", nargs="+", default=["phash", "efficientnet-lite0"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    load = os.getloadavg()
    results: dict = {"shots": args.shots, "seed": args.seed, "models": {}}
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as files:
        os.environ["CBIR_HOME"] = home  # never the user's collection
        os.environ.pop("CBIR_DATABASE_URL", None)
        from cbir.storage import embedded

        try:
            shots = write_shots(sample(args.shots, args.seed), Path(files))
            for model in args.models:
                results["models"][model] = measure(model, shots, Path(files))
        finally:
            embedded.stop()
    results["load_average"] = [load, os.getloadavg()]
    print(
        f"{args.shots} shots (seed {args.seed}); "
        f"load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        "| model | DNG decoded by | pairs | grouped by `cbir dupes` | within threshold | false pairings "
        "| median distance |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, r in results["models"].items():
        for variant in VARIANTS:
            v = r[variant]
            print(
                f"| {model} (<= {v['threshold']:g}) | {variant} | {v['pairs']} | {v['found_by_dupes']} | "
                f"{v['within_threshold']} | {v['false_pairings']} | {v['median_distance']:.3g} |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
