"""Duplicates: the benchmark's transformed copies, and `cbir dupes` on planted copies of real photos."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageOps
from support import ROOT, caltech_files, make_subset, run_cli
from support.apptest import page

from cbir.images import decode
from cbir.indexing.ingest import ingest

spec = importlib.util.spec_from_file_location("duplicates_bench", ROOT / "benchmarks" / "duplicates.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)

ORIGINAL = caltech_files("elephant", 1)[0]


def test_benchmark_generates_every_transformed_copy() -> None:
    img = decode(ORIGINAL.read_bytes()).rgb
    copies = {name: decode(data) for name, data in bench.transformed_copies(img).items()}
    assert len(copies) == 22 and len({p.sha256 for p in copies.values()}) == 22  # all different files
    w, h = img.size
    assert copies["resize 50%"].rgb.size == (round(w / 2), round(h / 2))
    assert max(copies["thumbnail 128 px"].rgb.size) == 128
    assert copies["upscale 2x"].rgb.size == (2 * w, 2 * h)
    crop = copies["crop 90%"].rgb.size
    assert abs(crop[0] - 0.9 * w) <= 1 and abs(crop[1] - 0.9 * h) <= 1
    assert copies["PNG re-encode"].format == "PNG" and copies["WebP re-encode"].format == "WEBP"
    assert np.array_equal(np.asarray(copies["PNG re-encode"].rgb), np.asarray(img))  # lossless
    grey = np.asarray(copies["greyscale"].rgb).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2  # decoded back to RGB: all channels equal
    mirrored = np.asarray(ImageOps.mirror(img)).astype(int)
    assert np.abs(np.asarray(copies["mirror"].rgb).astype(int) - mirrored).mean() < 3
    brighter = np.asarray(copies["brightness +30%"].rgb).mean()
    assert brighter > np.asarray(img).mean() * 1.1
    assert copies["rotate 5 degrees"].rgb.size == (w, h)
    assert copies["JPEG q30"].nbytes < 0.6 * len(bench._encode(img, quality=90))
    assert all(p.format == "JPEG" for n, p in copies.items() if n not in ("PNG re-encode", "WebP re-encode"))
    for n in ("rotate 90", "rotate 270"):
        assert copies[n].rgb.size == (h, w)
    upside_down = np.asarray(img.rotate(180)).astype(int)
    assert np.abs(np.asarray(copies["rotate 180"].rgb).astype(int) - upside_down).mean() < 3
    assert copies["rotate 15 degrees"].rgb.size == (w, h)
    crop = copies["crop 70%"].rgb.size
    assert abs(crop[0] - 0.7 * w) <= 1 and abs(crop[1] - 0.7 * h) <= 1
    crop = copies["mirror + crop 80%"].rgb.size
    assert abs(crop[0] - 0.8 * w) <= 1 and abs(crop[1] - 0.8 * h) <= 1
    assert copies["border 10%"].rgb.size == (w + 2 * round(0.1 * w), h + 2 * round(0.1 * h))
    assert copies["border 10%"].rgb.getpixel((1, 1)) == (255, 255, 255)
    for n, rows in (("caption band", slice(round(0.8 * h) + 2, h)), ("corner watermark", slice(h - h // 8, h))):
        changed = np.abs(np.asarray(copies[n].rgb).astype(int) - np.asarray(img).astype(int)).mean(axis=(1, 2))
        assert changed[rows].mean() > 4 * changed[: h // 2].mean() + 5, n  # the overlay sits at the bottom only
    assert copies["screenshot (80%, JPEG q70)"].rgb.size == (round(0.8 * w), round(0.8 * h))


def test_benchmark_smoke_run_reports_every_transform(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "duplicates.py"), "--collection", "20", "--originals", "2"]
        + ["--negatives", "2", "--same-category", "2", "--time-of", "0", "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in bench.TRANSFORMS:
        assert f"| {name} |" in proc.stdout
    assert "unrelated photos" in proc.stdout and "goals (combined, held-out):" in proc.stdout
    rows = json.loads((tmp_path / "r.json").read_text())["splits"]["held-out"]
    assert rows["PNG re-encode"]["phash"]["recall"] == 1.0  # same pixels, same hash
    assert rows["mirror"]["combined"]["top1"] == 1.0  # found as its mirrored variant, the most keypoints agree


@pytest.fixture(scope="module")
def planted(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos plus an exact copy, a half-size version and a JPEG q30 copy of one elephant."""
    root = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 6, "rhino": 6, "Leopards": 6})
    original = root / "elephant" / ORIGINAL.name
    img = decode(original.read_bytes()).rgb
    files = {"original": original, "exact": root / "rhino" / "renamed.jpg", "half": root / "rhino" / "small.jpg"}
    shutil.copy(original, files["exact"])
    files["half"].write_bytes(bench.TRANSFORMS["resize 50%"](img))
    files["q30"] = root / "Leopards" / "lowq.jpg"
    files["q30"].write_bytes(bench.TRANSFORMS["JPEG q30"](img))
    files["upload"] = root.parent / "brighter-upload.jpg"  # not ingested
    files["upload"].write_bytes(bench.TRANSFORMS["brightness +30%"](img))
    ingest([root], "phash", progress=False)
    return files


def test_dupes_groups_exact_and_resized_copies(planted: dict[str, Path]) -> None:
    report = json.loads(run_cli("dupes", "--json", check=True).stdout)
    assert report["model"] == "phash" and report["threshold"] == 8
    assert [sorted(g["members"][0]["paths"]) for g in report["exact"]] == [
        sorted([str(planted["original"]), str(planted["exact"])])
    ]
    group = next(g for g in report["groups"] if str(planted["half"]) in [m["path"] for m in g["members"]])
    paths = {m["path"] for m in group["members"]}
    assert {str(planted["half"]), str(planted["q30"])} <= paths
    assert paths & {str(planted["original"]), str(planted["exact"])}  # the original (stored once) is there
    assert group["kind"] == "resized" and group["max_distance"] <= 8
    text = run_cli("dupes", check=True).stdout
    assert "exact duplicates (the same bytes at several paths): 1" in text and "resized" in text


def test_dupes_of_an_upload_finds_its_source(planted: dict[str, Path]) -> None:
    found = json.loads(run_cli("dupes", "--of", str(planted["upload"]), "--json", check=True).stdout)["sources"]
    assert found and not found[0]["exact"]
    assert str(planted["original"]) in [p for s in found for p in s["paths"]]
    same = json.loads(run_cli("dupes", "--of", str(planted["exact"]), "--json", check=True).stdout)["sources"]
    assert same[0]["exact"] and same[0]["distance"] == 0
    assert set(same[0]["paths"]) == {str(planted["original"]), str(planted["exact"])}
    unrelated = caltech_files("airplanes", 1)[0]
    none = run_cli("dupes", "--of", str(unrelated), "--threshold", "2", check=True).stdout
    assert none.startswith("no stored image within 2")


def test_dupes_bad_input(planted: dict[str, Path], tmp_path: Path) -> None:
    missing = run_cli("dupes", "--of", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    negative = run_cli("dupes", "--threshold", "-1")
    assert negative.returncode == 2 and "must not be negative" in negative.stderr
    (tmp_path / "notes.jpg").write_text("not an image")
    bad = run_cli("dupes", "--of", str(tmp_path / "notes.jpg"))
    assert bad.returncode == 2 and "not a usable image" in bad.stderr
    os.mkfifo(tmp_path / "pipe.jpg")  # a named pipe must not block the command
    pipe = run_cli("dupes", "--of", str(tmp_path / "pipe.jpg"), timeout=60)
    assert pipe.returncode == 2 and "not a regular file" in pipe.stderr


def test_duplicates_page_shows_groups_and_an_uploads_source(planted: dict[str, Path]) -> None:
    at = page("duplicates")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Exact duplicates"] == "1" and int(metrics["Resized versions"]) >= 1
    assert any(str(planted["exact"]) in c.value for c in at.caption)  # the exact group lists both paths
    at.file_uploader[0].upload("upload.jpg", planted["upload"].read_bytes(), "image/jpeg").run()
    assert not at.exception and not at.error
    assert any(str(planted["original"]) in c.value for c in at.code)
