"""Copies that survive edits: mirrored, rotated and cropped copies of real Caltech-101 photos traced to their
original by `cbir dupes --of` with the edit named, look-alikes rejected by keypoint verification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from support import caltech_files, encode, make_subset, run_cli
from support.apptest import page

from cbir.dashboard import copies_view
from cbir.images import decode
from cbir.indexing.ingest import ingest
from cbir.retrieval import variants, verify

ORIGINAL = caltech_files("elephant", 1)[0]


def _crop(img: Image.Image, keep: float) -> Image.Image:
    dx, dy = round(img.width * (1 - keep) / 2), round(img.height * (1 - keep) / 2)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


EDITS = {
    "mirrored": ImageOps.mirror,
    "rotated 90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "cropped to 80%": lambda im: _crop(im, 0.8),
    "mirrored, rotated 180": ImageOps.flip,  # upside down = mirrored and turned twice
    "rotated 15": lambda im: im.rotate(15, resample=Image.Resampling.BICUBIC),
    "mirrored, cropped to 70%": lambda im: _crop(ImageOps.mirror(im), 0.7),
    "with a border (the original fills 80%)": lambda im: ImageOps.expand(
        im, (im.width // 8, im.height // 8, im.width // 8, im.height // 8), fill="white"
    ),
    "scaled 0.50x": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
}


@pytest.fixture(scope="module")
def original() -> Image.Image:
    return decode(ORIGINAL.read_bytes()).rgb


def test_each_variant_undoes_its_own_edit(original: Image.Image) -> None:
    assert [v.name for v in variants.ALL] == [
        "as is",
        "rotated 90",
        "rotated 180",
        "rotated 270",
        "mirrored",
        "mirrored, rotated 90",
        "mirrored, rotated 180",
        "mirrored, rotated 270",
    ]
    pixels = np.asarray(original)
    for v in variants.ALL:
        assert np.array_equal(np.asarray(v.undo(v.apply(original))), pixels), v.name
    turned = variants.Variant(False, 1).apply(original)  # counterclockwise, as Pillow's rotate
    assert np.array_equal(np.asarray(turned), np.asarray(original.rotate(90, expand=True)))
    assert variants.for_kind("bit") == variants.ALL and variants.for_kind("vector") == variants.ROTATIONS


def test_merging_keeps_each_image_at_its_best_variant() -> None:
    mirrored = variants.Variant(True, 0)
    found = [(variants.AS_IS, [(1, 5.0), (2, 3.0)]), (mirrored, [(1, 0.0), (3, 9.0)])]
    merged = variants.merge("phash", found, k=2)
    assert [(c.id, c.distance, c.variant.name) for c in merged] == [(1, 0.0, "mirrored"), (2, 3.0, "as is")]


@pytest.mark.parametrize("words", list(EDITS))
def test_verification_finds_and_names_the_edit(original: Image.Image, words: str) -> None:
    copy = decode(encode(EDITS[words](original), "JPEG", quality=90)).rgb
    found = verify.best_match(verify.query_features(copy), verify.features(original))
    assert found is not None and found.verified(), found and (found.inliers, found.agreement)
    assert found.describe() == words


def test_different_photos_of_the_same_category_are_not_copies(original: Image.Image) -> None:
    stored = verify.features(original)
    for other in caltech_files("elephant", 12)[1:]:
        found = verify.best_match(verify.query_features(decode(other.read_bytes()).rgb), stored)
        assert found is None or not found.verified(), (other.name, found.inliers, found.agreement)


def test_two_shots_of_one_scene_are_look_alikes_not_copies() -> None:
    """The same man, room and pose seconds apart: the background agrees, the moved subject does not."""
    first, second = (decode(p.read_bytes()).rgb for p in caltech_files("Faces", 200)[159:163:3])
    found = verify.best_match(verify.query_features(second), verify.features(first))
    assert found is not None and found.inliers >= verify.MIN_INLIERS  # plenty of matching background...
    assert found.agreement < verify.MIN_AGREEMENT and not found.verified()  # ...but the subject disagrees


def test_the_evidence_outlines_the_shared_region(original: Image.Image) -> None:
    copy = _crop(ImageOps.mirror(original), 0.7)
    found = verify.best_match(verify.query_features(copy), verify.features(original))
    shown_copy, shown_original = copies_view.evidence(copy, original, found)
    assert shown_copy.size == copy.size and shown_original.size == original.size  # small pictures keep their size
    red = [
        (np.abs(np.asarray(im).astype(int) - copies_view.OUTLINE).sum(axis=2) < 30)
        for im in (shown_copy, shown_original)
    ]
    # on the copy the whole frame is shared, so the outline runs along its edges; on the original, a centred box
    assert red[0][:, :3].any(axis=1).mean() > 0.9 and red[0][:3, :].any(axis=0).mean() > 0.9
    h, w = red[1].shape
    assert red[1][h // 2, : w // 4].any() and not red[1][h // 2, : round(w * 0.1)].any()


@pytest.fixture(scope="module")
def stored(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos under phash and the pretrained efficientnet-lite0, plus edited copies of one elephant outside."""
    root = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 6, "rhino": 6, "dalmatian": 6})
    original = root / "elephant" / ORIGINAL.name
    img = decode(original.read_bytes()).rgb
    files = {"original": original, "small": root / "dalmatian" / "small-elephant.jpg"}
    files["small"].write_bytes(
        encode(EDITS["scaled 0.50x"](img), "JPEG", quality=90)
    )  # a stored resized copy, for groups
    for model in ("phash", "efficientnet-lite0"):
        ingest([root], model, progress=False)
    outside = root.parent / "uploads"
    outside.mkdir()
    for words in ("mirrored", "rotated 90", "cropped to 80%"):
        files[words] = outside / f"{words.replace(' ', '-').replace('%', '')}.jpg"
        files[words].write_bytes(encode(EDITS[words](img), "JPEG", quality=90))
    return files


@pytest.mark.parametrize("words", ["mirrored", "rotated 90", "cropped to 80%"])
def test_dupes_of_traces_an_edited_copy_to_its_original(stored: dict[str, Path], words: str) -> None:
    report = json.loads(run_cli("dupes", "--of", str(stored[words]), "--json", check=True).stdout)
    assert report["models"] == ["phash", "efficientnet-lite0"] and report["verified"]
    first, *others = report["sources"]
    assert str(stored["original"]) in first["paths"] and not first["exact"]
    assert first["transform"] == words and first["inliers"] >= report["min_inliers"]
    assert [o["paths"] for o in others] == [[str(stored["small"])]]  # the stored half-size copy is one too
    assert report["rejected"]  # the other candidates were checked and turned down
    for r in report["rejected"]:
        assert r["inliers"] is None or not (
            r["inliers"] >= report["min_inliers"] and r["match"]["agreement"] >= report["min_agreement"]
        )


def test_dupes_of_names_the_edit_in_words(stored: dict[str, Path]) -> None:
    text = run_cli("dupes", "--of", str(stored["rotated 90"]), check=True).stdout
    line = next(line for line in text.splitlines() if str(stored["original"]) in line)
    assert line.startswith("copy of image ") and ", rotated 90 (" in line and "keypoints agree" in line


def test_dupes_of_a_different_photo_of_the_same_category_finds_no_copy(stored: dict[str, Path]) -> None:
    other = caltech_files("elephant", 10)[-1]  # not stored
    report = json.loads(run_cli("dupes", "--of", str(other), "--json", check=True).stdout)
    assert report["sources"] == [] and report["rejected"]


def test_dupes_verify_splits_look_alike_groups_from_copies(stored: dict[str, Path]) -> None:
    report = json.loads(run_cli("dupes", "--threshold", "24", "--verify", "--json", check=True).stdout)
    assert report["verified"] and report["groups"]
    copies = [g for g in report["groups"] if g["verified"]]
    lookalikes = [g for g in report["groups"] if g["kind"] == "look-alike"]
    assert lookalikes and all(g["verified"] is False for g in lookalikes)
    pair = {str(stored["original"]), str(stored["small"])}
    (group,) = [g for g in copies if pair <= {m["path"] for m in g["members"]}]
    assert group["kind"] == "resized" and all(m["inliers"] >= report["min_inliers"] for m in group["members"][1:])
    assert not any(pair <= {m["path"] for m in g["members"]} for g in lookalikes)
    members = [m["path"] for g in report["groups"] for m in g["members"][1:]]
    assert len(members) == len(set(members))  # every grouped image is judged once, against its leader


def test_duplicates_page_outlines_the_match_of_an_upload(stored: dict[str, Path]) -> None:
    at = page("duplicates")
    at.file_uploader[0].upload("upload.jpg", stored["mirrored"].read_bytes(), "image/jpeg").run()
    assert not at.exception and not at.error
    assert any("Copy of image" in m.value and "mirrored" in m.value for m in at.markdown)
    assert any(str(stored["original"]) in c.value for c in at.code)
    captions = [c for im in at.image for c in im.captions]
    assert any("Your upload" in c for c in captions) and any("the part your upload shows" in c for c in captions)
