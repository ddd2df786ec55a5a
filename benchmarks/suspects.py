"""Planted-mislabel benchmark of `cbir suspects` (issue 24): how many images moved to a wrong folder rank on top.

A copy of Caltech-101 (all 102 folders) is ingested with the genuine built-in efficientnet-lite0 into its own
CBIR_HOME; then a seeded 5% of the images are moved into another, randomly chosen folder and `cbir sync`
follows the moves (same bytes: relabelled, not re-embedded). `cbir suspects --model efficientnet-lite0`
ranks every image; the figures are the share of planted images among the top 5% (as many places as planted
images: precision@K = recall@K) and, for those found, how often the suggestion names the folder they came
from. The same stored neighbours also feed cleanlab's `find_label_issues` (confident learning on the
out-of-sample similarity-weighted kNN posterior), the field's library, as a baseline on the same K places.

    python benchmarks/suspects.py                       # a temporary work folder, removed afterwards
    python benchmarks/suspects.py --workdir /tmp/sus    # kept: a rerun moves the planted files back first

Everything runs through the CLI as a user runs it (ingest, sync, suspects --json) plus the package's API for
the baseline's inputs. Nothing is hard-coded: every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CALTECH = ROOT.parent / "shared" / "datasets" / "caltech101"
PLANTED = "planted.json"


def cli(home: Path, *args: str) -> str:
    """Run `python -m cbir ...` in the benchmark's home; its stdout (stderr passes through: progress bars)."""
    env = os.environ | {"CBIR_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cbir", *args], env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode not in (0, 3):  # 3: some files skipped (listed), as ingest reports them
        raise SystemExit(f"cbir {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}")
    return proc.stdout


def prepare(workdir: Path, source: Path, model: str) -> tuple[Path, Path]:
    """The copied tree and its home, ingested (once; a kept workdir is reused with its planted files put back)."""
    tree, home = workdir / "tree", workdir / "home"
    planted = workdir / PLANTED
    if planted.exists():
        for row in json.loads(planted.read_text()):
            Path(row["to"]).rename(row["from"])
        planted.unlink()
    if not tree.exists():
        shutil.copytree(source, tree)
    started = time.perf_counter()
    print(cli(home, "ingest", str(tree), "--model", model).strip())
    print(cli(home, "sync", str(tree)).strip())
    print(f"ingest + sync of the clean tree: {time.perf_counter() - started:.0f}s")
    return tree, home


def plant(tree: Path, share: float, seed: int) -> list[dict[str, str]]:
    """Move a seeded `share` of the files into another folder (chosen at random), each under a new name."""
    folders = sorted(p for p in tree.iterdir() if p.is_dir())
    files = sorted(f for d in folders for f in d.iterdir() if f.is_file())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), round(share * len(files)), replace=False)
    moves = []
    for i in sorted(chosen):
        src = files[i]
        others = [d for d in folders if d != src.parent]
        dest = others[rng.integers(len(others))] / f"planted-{src.parent.name}-{src.name}"
        src.rename(dest)
        moves.append({"from": str(src), "to": str(dest), "true": src.parent.name, "wrong": dest.parent.name})
    return moves


def cleanlab_baseline(home: Path, run_id: int, planted: dict[str, str], top: int) -> tuple[float, int]:
    """cleanlab.find_label_issues on the stored neighbours' kNN posterior: share of planted among its top."""
    os.environ["CBIR_HOME"] = str(home)
    from cleanlab.filter import find_label_issues

    from cbir.analysis.evaluate import category_codes
    from cbir.analysis.suspects import POWER, similarities
    from cbir.storage import db
    from cbir.storage import suspects as stored
    from cbir.storage.models import resolve_model

    with db.connect() as conn:
        model = resolve_model(conn, "efficientnet-lite0")
        rows = stored.ranked(conn, run_id, limit=10**9)
    paths = [r.path for r in rows]
    labels, names = category_codes([r.category for r in rows])
    code = {r.id: labels[n] for n, r in enumerate(rows)}
    probs = np.full((len(rows), len(names)), 1e-6)
    for n, r in enumerate(rows):
        weights = similarities(np.array(r.distances), model.metric, model.dim) ** POWER
        for neighbour, w in zip(r.neighbours, weights, strict=True):
            if code.get(neighbour, -1) >= 0:
                probs[n, code[neighbour]] += w
    probs /= probs.sum(axis=1, keepdims=True)
    issues = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    found = sum(paths[i] in planted for i in issues[:top])
    return found / top, len(issues)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=CALTECH, help="dataset folder (default: Caltech-101)")
    parser.add_argument("--workdir", type=Path, help="keep the copy and its database here (default: temporary)")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--share", type=float, default=0.05, help="share of images moved to a wrong folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cbir-suspects-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        tree, home = prepare(workdir, args.source, args.model)
        moves = plant(tree, args.share, args.seed)
        (workdir / PLANTED).write_text(json.dumps(moves))
        print(cli(home, "sync", str(tree)).strip())
        top = len(moves)
        started = time.perf_counter()
        out = cli(home, "suspects", "--model", args.model, "--top", str(top), "--k", str(args.k), "--json")
        seconds = time.perf_counter() - started
        report = json.loads(out)
        planted = {m["to"]: m["true"] for m in moves}
        found = [r for r in report["suspects"] if r["path"] in planted]
        right = sum(r["suggested"] == planted[r["path"]] for r in found)
        images = report["run"]["images"]
        print(f"\n{args.model}, k={args.k}: {images} images, {top} planted ({args.share:.0%}, seed {args.seed})")
        print(f"cbir suspects: {seconds:.1f}s (run {report['run']['id']}, scoring {report['run']['seconds']:.1f}s)")
        print(f"planted among the top {top} (precision@{top} = recall@{top}): {len(found) / top:.3f}")
        print(f"suggestion names the true folder, of those found: {right / max(len(found), 1):.3f}")
        share, flagged = cleanlab_baseline(home, report["run"]["id"], planted, top)
        print(
            f"cleanlab find_label_issues (kNN posterior, self_confidence), planted among its top {top}: {share:.3f}"
            f" ({flagged} issues flagged)"
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
