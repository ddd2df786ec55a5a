"""Photo libraries: HEIC/HEIF and camera RAW (DNG) files made with real encoders from real Caltech-101 pixels,
what the camera recorded (EXIF by piexif) as typed columns, search filtered by time and camera, and the bad
inputs of issue 19 (truncated HEIC and RAW, an unsupported HEIF codec, impossible dates, a GPS rational with a
zero denominator, a 1 MB maker note)."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image
from support import caltech_files, run_cli
from support.photos import dng_bytes, encode, exif_bytes, heif_bytes, mean_difference

from cbir.config import settings
from cbir.errors import BadImage, ConfigError
from cbir.images import RAW_PREVIEW_MIN_SIDE, decode
from cbir.photo_metadata import parse_exif_datetime, read_metadata
from cbir.storage import db

ELEPHANTS = caltech_files("elephant", 40)
TAKEN = datetime(2021, 3, 4, 5, 6, 7)
IPHONE = {"make": "Apple", "model": "iPhone 15 Pro"}
PARIS = (48.8584, 2.2945, 35.5)


def source(n: int = 0) -> Image.Image:
    return Image.open(ELEPHANTS[n]).convert("RGB")


def upright(img: Image.Image) -> Image.Image:
    """What EXIF orientation 6 ("rotate 90 degrees clockwise to view") shows."""
    return img.transpose(Image.Transpose.ROTATE_270)


def even(img: Image.Image) -> Image.Image:
    """The part of a picture a Bayer mosaic keeps: even width and height."""
    return img.crop((0, 0, img.width // 2 * 2, img.height // 2 * 2))


def assert_shows(decoded: Image.Image, expected: Image.Image, tolerance: float) -> None:
    """Pixels match the expected picture (at the decoded size) and clearly not the same picture turned round."""
    assert abs(decoded.width / decoded.height - expected.width / expected.height) < 0.02
    assert mean_difference(decoded, expected) < tolerance
    assert mean_difference(decoded, expected.transpose(Image.Transpose.ROTATE_180)) > 3 * tolerance


# --- decoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("oriented", [False, True])
def test_heic_decodes_upright_with_its_exif(oriented: bool) -> None:
    img = source()
    exif = exif_bytes(taken=TAKEN, orientation=6 if oriented else None, **IPHONE)
    picture = decode(heif_bytes(img, exif=exif))
    assert picture.format == "HEIF"
    assert picture.rgb.size == (upright(img) if oriented else img).size
    assert_shows(picture.rgb, upright(img) if oriented else img, tolerance=3)
    meta = read_metadata(picture.exif)
    assert (meta.taken_at, meta.camera_make, meta.camera_model) == (TAKEN, "Apple", "iPhone 15 Pro")


def test_heif_with_alpha_is_composited_on_white() -> None:
    img = source().convert("RGBA")
    img.putalpha(Image.new("L", img.size, 255).crop((0, 0, img.width, img.height)))
    transparent = img.copy()
    transparent.paste((0, 0, 0, 0), (0, 0, 40, 40))
    picture = decode(heif_bytes(transparent))
    assert picture.rgb.mode == "RGB" and picture.rgb.size == img.size
    corner = picture.rgb.crop((4, 4, 36, 36))
    assert np.asarray(corner.convert("L")).min() > 240  # white, not black
    assert mean_difference(picture.rgb.crop((60, 60, 280, 200)), img.convert("RGB").crop((60, 60, 280, 200))) < 3


@pytest.mark.parametrize("oriented", [False, True])
def test_dng_uses_a_large_preview_and_keeps_the_sensor_size(oriented: bool) -> None:
    img = source().resize((600, 450))  # a preview of at least the models' input size
    picture = decode(dng_bytes(img, preview=img, orientation=6 if oriented else 1, taken=TAKEN))
    assert (picture.format, picture.raw_decode) == ("DNG", "preview")
    assert (picture.width, picture.height) == ((450, 600) if oriented else (600, 450))
    assert_shows(picture.rgb, upright(img) if oriented else img, tolerance=2)
    meta = read_metadata(picture.exif)
    assert (meta.taken_at, meta.camera_make, meta.camera_model) == (TAKEN, "Cbir", "Test Camera")


@pytest.mark.parametrize("preview", [None, "small"])
def test_dng_without_a_usable_preview_is_demosaiced(preview: str | None) -> None:
    img = source()  # 300x225: the mosaic needs even sides, so 300x224
    small = img.resize((RAW_PREVIEW_MIN_SIDE // 2, RAW_PREVIEW_MIN_SIDE // 2)) if preview else None
    picture = decode(dng_bytes(img, preview=small, orientation=6))
    assert (picture.format, picture.raw_decode) == ("DNG", "demosaic")
    assert (picture.width, picture.height) == (224, 300)
    assert_shows(picture.rgb, upright(even(img)), tolerance=12)


def test_a_16_bit_grey_tiff_is_not_taken_for_raw() -> None:
    """LibRaw would read it as a Bayer mosaic; without a RAW's mark it stays a TIFF."""
    grey = np.asarray(source().convert("L"), dtype=np.uint16) * 257
    picture = decode(encode(Image.fromarray(grey), "TIFF"))
    assert picture.format == "TIFF" and picture.raw_decode is None
    assert mean_difference(picture.rgb, source().convert("L").convert("RGB")) < 1


# --- metadata parsing ------------------------------------------------------------------------------------


def test_metadata_fields_from_piexif() -> None:
    exif = exif_bytes(
        taken=TAKEN,
        offset="-05:00",
        gps=(-33.8568, -151.2153, -12.0),
        raw={
            "0th": {piexif.ImageIFD.Software: b"17.1"},
            "Exif": {
                piexif.ExifIFD.ExposureTime: (1, 250),
                piexif.ExifIFD.FNumber: (28, 10),
                piexif.ExifIFD.ISOSpeedRatings: 400,
                piexif.ExifIFD.FocalLength: (69, 10),
                piexif.ExifIFD.LensModel: b"iPhone 15 Pro back camera 6.86mm f/1.78",
            },
        },
        **IPHONE,
    )
    meta = read_metadata(decode(encode(source(), "JPEG", exif=exif)).exif)
    assert (meta.taken_at, meta.utc_offset_minutes) == (TAKEN, -300)
    assert (meta.exposure_s, meta.f_number, meta.iso, meta.focal_length_mm) == (0.004, 2.8, 400, 6.9)
    assert meta.lens.startswith("iPhone 15 Pro back camera") and meta.software == "17.1"
    assert meta.gps_latitude == pytest.approx(-33.8568, abs=1e-6)
    assert meta.gps_longitude == pytest.approx(-151.2153, abs=1e-6)
    assert meta.gps_altitude_m == pytest.approx(-12.0) and not meta.malformed
    assert read_metadata(decode(encode(source(), "JPEG", exif=exif)).exif, store_gps=False).gps_latitude is None


def test_impossible_dates_are_malformed_and_blank_ones_absent() -> None:
    for text in ("0000:00:00 00:00:00", "9999:01:01 00:00:00", "2021:02:30 10:00:00", "yesterday"):
        with pytest.raises(ValueError):
            parse_exif_datetime(text)
    assert parse_exif_datetime("    :  :     :  :  ") is None
    assert parse_exif_datetime("2021:03:04 05:06:07\x00") == TAKEN


def test_store_gps_setting() -> None:
    assert settings({}).store_gps and not settings({"CBIR_STORE_GPS": "0"}).store_gps
    with pytest.raises(ConfigError, match="CBIR_STORE_GPS"):
        settings({"CBIR_STORE_GPS": "sometimes"})


# --- ingest, columns, search --------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def library(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A phone-and-camera folder ingested with phash: JPEGs with EXIF, HEIC, HEIF and DNG files."""
    root = tmp_path_factory.mktemp("library")
    files = {
        "jpeg": write(
            root / "phone" / "IMG_0001.JPG",
            encode(source(0), "JPEG", quality=92, exif=exif_bytes(taken=TAKEN, offset="+02:00", gps=PARIS, **IPHONE)),
        ),
        "heic": write(
            root / "phone" / "IMG_0002.HEIC", heif_bytes(source(1), exif=exif_bytes(orientation=6, **IPHONE))
        ),
        "heif": write(root / "phone" / "IMG_0003.heif", heif_bytes(source(2).convert("RGBA"))),
        "dng-preview": write(
            root / "camera" / "DSC_0004.DNG",
            dng_bytes(source(3).resize((600, 450)), preview=source(3).resize((600, 450)), taken=TAKEN),
        ),
        "dng-raw": write(root / "camera" / "DSC_0005.DNG", dng_bytes(source(4), orientation=6)),
    }
    # 30 more phone photos, one a month from January 2020: the time filter has to skip most neighbours
    for n in range(5, 35):
        taken = datetime(2020 + (n - 5) // 12, (n - 5) % 12 + 1, 15, 12, 0, 0)
        camera = IPHONE if n % 2 else {"make": "Canon", "model": "Canon EOS R5"}
        exif = exif_bytes(taken=taken, **camera)
        files[f"month{n}"] = write(root / "phone" / f"IMG_{n:04d}.JPG", encode(source(n), "JPEG", exif=exif))
    run_cli("ingest", str(root), "--model", "phash", check=True)
    return files


def rows(sql: str, *params) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def stored(path: Path) -> tuple:
    return rows(
        "SELECT i.id, i.format, i.width, i.height, i.thumbnail FROM images i JOIN image_paths p ON p.image_id = i.id"
        " WHERE p.path = %s",
        str(path),
    )[0]


def metadata(path: Path) -> dict:
    found = rows(
        "SELECT to_jsonb(m) FROM image_metadata m JOIN image_paths p ON p.image_id = m.image_id WHERE p.path = %s",
        str(path),
    )
    return found[0][0] if found else {}


def test_every_format_is_stored_upright_at_its_size(library: dict[str, Path]) -> None:
    expected = {
        "jpeg": ("JPEG", source(0), 6),
        "heic": ("HEIF", upright(source(1)), 6),
        "heif": ("HEIF", source(2), 6),
        "dng-preview": ("DNG", source(3).resize((600, 450)), 6),
        "dng-raw": ("DNG", upright(even(source(4))), 10),
    }
    for name, (fmt, picture, tolerance) in expected.items():
        _, stored_format, width, height, thumbnail = stored(library[name])
        assert (stored_format, (width, height)) == (fmt, picture.size), name
        assert_shows(Image.open(io.BytesIO(bytes(thumbnail))), picture, tolerance)


def test_metadata_columns_hold_the_written_values(library: dict[str, Path]) -> None:
    m = metadata(library["jpeg"])
    assert (m["camera_make"], m["camera_model"], m["camera"]) == ("Apple", "iPhone 15 Pro", "Apple iPhone 15 Pro")
    assert m["taken_at"] == "2021-03-04T05:06:07" and m["utc_offset_minutes"] == 120
    assert m["taken_at_utc"].startswith("2021-03-04T03:06:07")
    assert (m["gps_latitude"], m["gps_longitude"]) == (pytest.approx(PARIS[0]), pytest.approx(PARIS[1]))
    assert m["gps_altitude_m"] == pytest.approx(PARIS[2]) and m["malformed"] == {} and m["raw_decode"] is None
    assert metadata(library["heic"])["camera"] == "Apple iPhone 15 Pro"
    assert metadata(library["heif"]) == {}  # nothing recorded, no row
    dng = metadata(library["dng-preview"])
    assert (dng["raw_decode"], dng["camera"], dng["taken_at"]) == ("preview", "Cbir Test Camera", "2021-03-04T05:06:07")
    assert metadata(library["dng-raw"])["raw_decode"] == "demosaic"
    assert metadata(library["month6"])["camera"] == "Canon EOS R5"  # the model already names the make
    assert rows("SELECT has_table_privilege('cbir_reader', 'image_metadata', 'SELECT')") == [(True,)]  # SQL page


def test_ingest_summary_counts_raw_decoding(cbir_home: Path, library: dict[str, Path], tmp_path: Path) -> None:
    img = source(36).resize((600, 450))
    write(tmp_path / "a.dng", dng_bytes(img, preview=img))
    write(tmp_path / "b.dng", dng_bytes(source(37)))
    write(tmp_path / "c.dng", dng_bytes(source(38)))
    proc = run_cli("ingest", str(tmp_path), "--model", "phash", check=True)
    assert "camera RAW: 1 shown by their embedded preview, 2 demosaiced" in proc.stdout


@pytest.mark.parametrize("window", [("2021-01-01", "2022-01-01"), ("2021-06-01", None)])
def test_search_filtered_by_time_returns_k_rows(library: dict[str, Path], window: tuple[str, str | None]) -> None:
    after, before = window
    args = ["--taken-after", after] + (["--taken-before", before] if before else [])
    proc = run_cli("search", str(library["jpeg"]), "-k", "5", "--model", "phash", "--json", *args, check=True)
    hits = json.loads(proc.stdout)
    assert len(hits) == 5
    start, end = datetime.fromisoformat(after), datetime.fromisoformat(before) if before else datetime.max
    taken = [datetime.fromisoformat(metadata(Path(h["path"]))["taken_at"]) for h in hits]
    assert all(start <= t < end for t in taken), taken
    unfiltered = json.loads(run_cli("search", str(library["jpeg"]), "-k", "5", "--model", "phash", "--json").stdout)
    assert [h["id"] for h in unfiltered] != [h["id"] for h in hits]  # the filter changed the answer


def test_search_filtered_by_camera(library: dict[str, Path]) -> None:
    proc = run_cli("search", str(library["jpeg"]), "-k", "8", "--model", "phash", "--json", "--camera", "eos r5")
    hits = json.loads(proc.stdout)
    assert len(hits) == 8 and {metadata(Path(h["path"]))["camera"] for h in hits} == {"Canon EOS R5"}
    empty = run_cli("search", str(library["jpeg"]), "--model", "phash", "--taken-after", "2030-01-01", "--json")
    assert json.loads(empty.stdout) == []
    bad = run_cli("search", str(library["jpeg"]), "--taken-after", "2022-01-01", "--taken-before", "2021-01-01")
    assert bad.returncode == 2 and "--taken-after must be earlier" in bad.stderr


def test_a_heic_copy_of_a_stored_jpeg_is_found_as_its_copy(library: dict[str, Path], tmp_path: Path) -> None:
    jpeg_id = stored(library["month7"])[0]
    copy = write(tmp_path / "copy.heic", heif_bytes(Image.open(library["month7"]).convert("RGB"), quality=60))
    proc = run_cli("dupes", "--of", str(copy), "--model", "phash", "--json", check=True)
    found = [d["id"] for d in _dicts(json.loads(proc.stdout)) if "id" in d and isinstance(d["id"], int)]
    assert found and found[0] == jpeg_id, proc.stdout


def _dicts(value):
    """Every dict in a JSON value, depth first, in order."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _dicts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dicts(v)


def test_store_gps_off_stores_no_position(library: dict[str, Path], tmp_path: Path) -> None:
    photo = write(tmp_path / "private.jpg", encode(source(39), "JPEG", exif=exif_bytes(gps=PARIS, **IPHONE)))
    run_cli("ingest", str(photo), "--model", "phash", check=True, env=os.environ | {"CBIR_STORE_GPS": "0"})
    m = metadata(photo)
    assert m["camera"] == "Apple iPhone 15 Pro"
    assert (m["gps_latitude"], m["gps_longitude"], m["gps_altitude_m"]) == (None, None, None)


# --- bad input --------------------------------------------------------------------------------------------


def test_bad_photo_files_are_skipped_or_stored_without_the_bad_field(library: dict[str, Path], tmp_path: Path) -> None:
    before = rows("SELECT count(*) FROM images")[0][0], rows("SELECT count(*) FROM image_metadata")[0][0]
    img = source(20)
    heic = heif_bytes(img)
    dng = dng_bytes(img)
    maker_note = bytes(range(256)) * 4096  # 1 MiB
    skipped = {
        "truncated.heic": (heic[: len(heic) // 2], "cannot decode HEIF: "),
        "codec.heic": (heic.replace(b"hvc1", b"vvc1"), "HEIF with no image this build can decode (unsupported codec"),
        "truncated.dng": (dng[: len(dng) // 2], "cannot decode RAW: truncated or damaged image data"),
    }
    camera = {"make": "NIKON CORPORATION", "model": "NIKON Z 6"}
    kept = {
        "year0.jpg": (
            exif_bytes(raw={"Exif": {piexif.ExifIFD.DateTimeOriginal: b"0000:00:00 00:00:00"}}, **camera),
            "taken_at",
            "year 0 is outside",
        ),
        "year9999.jpg": (exif_bytes(taken=datetime(9999, 1, 1), **camera), "taken_at", "year 9999 is outside"),
        "gps.jpg": (
            exif_bytes(raw={"GPS": {1: b"N", 2: ((48, 0), (51, 1), (0, 1)), 3: b"E", 4: ((2, 1), (17, 1), (0, 1))}}),
            "gps_position",
            "zero denominator",
        ),
    }
    for name, (data, _) in skipped.items():
        write(tmp_path / name, data)
    for n, (name, (exif, _, _)) in enumerate(kept.items()):
        write(tmp_path / name, encode(source(21 + n), "JPEG", exif=exif))
    noted = exif_bytes(raw={"Exif": {piexif.ExifIFD.MakerNote: maker_note}}, taken=TAKEN, **camera)
    write(tmp_path / "makernote.webp", encode(source(25), "WEBP", exif=noted))  # EXIF in JPEG is limited to 64 KiB
    write(tmp_path / "no-preview.dng", dng_bytes(source(26)))

    proc = run_cli("ingest", str(tmp_path), "--model", "phash")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name, (_, reason) in skipped.items():
        line = next(line for line in lines if line.strip().startswith(str(tmp_path / name) + ":"))
        assert reason in line, line
    for name, (_, field, reason) in kept.items():
        line = next(line for line in lines if line.strip().startswith(f"{tmp_path / name}: {field}:"))
        assert reason in line, line
        m = metadata(tmp_path / name)
        assert field in m["malformed"] and reason in m["malformed"][field]
        assert m["taken_at"] is None and m["gps_latitude"] is None
    assert metadata(tmp_path / "year0.jpg")["camera"] == "NIKON Z 6"  # the other fields are kept
    noted = metadata(tmp_path / "makernote.webp")
    assert (noted["camera"], noted["taken_at"], noted["malformed"]) == ("NIKON Z 6", "2021-03-04T05:06:07", {})
    assert metadata(tmp_path / "no-preview.dng")["raw_decode"] == "demosaic"
    after = rows("SELECT count(*) FROM images")[0][0], rows("SELECT count(*) FROM image_metadata")[0][0]
    assert after == (before[0] + len(kept) + 2, before[1] + len(kept) + 2)  # nothing stored before was lost


def test_bad_photo_files_as_queries_give_one_line_errors(library: dict[str, Path]) -> None:
    heic = heif_bytes(source(30))
    for data in (heic[:300], heic.replace(b"hvc1", b"vvc1")):
        with pytest.raises(BadImage) as info:
            decode(data)
        assert "\n" not in str(info.value) and "HEIF" in str(info.value)


def test_search_page_filters_by_camera_and_time(library: dict[str, Path]) -> None:
    from support.apptest import labelled, page, texts

    at = page("search")
    at.radio[0].set_value("Stored image").run()
    labelled(at.selectbox, "Category").set_value("phone").run()
    labelled(at.selectbox, "Camera").set_value("Canon EOS R5").run()
    labelled(at.date_input, "Taken on or after").set_value(datetime(2021, 1, 1).date()).run()
    assert not at.exception and not at.error, texts(at)
    captions = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(captions) == 9  # k=10, but only 9 Canon photos were taken from 2021 on
    for caption in captions:
        m = metadata(Path(caption.split("\n")[1].strip()))
        assert m["camera"] == "Canon EOS R5" and m["taken_at"] >= "2021-01-01"


def test_map_colours_by_year_taken_and_by_camera(library: dict[str, Path]) -> None:
    from support.apptest import labelled, page

    from cbir.analysis import projection

    with db.connect() as conn:
        projection.project(conn, "phash", n_neighbors=5, progress=False)
    expected = {
        "camera": rows(
            "SELECT coalesce(m.camera, '(not recorded)'), count(*) FROM embeddings e JOIN models d ON d.id = e.model_id"
            " LEFT JOIN image_metadata m ON m.image_id = e.image_id WHERE d.name = 'phash' GROUP BY 1"
        ),
        "year taken": rows(
            "SELECT coalesce(extract(year FROM m.taken_at)::int::text, '(not recorded)'), count(*) FROM embeddings e"
            " JOIN models d ON d.id = e.model_id LEFT JOIN image_metadata m ON m.image_id = e.image_id"
            " WHERE d.name = 'phash' GROUP BY 1"
        ),
    }
    assert {"2020", "2021", "2022"} <= {label for label, _ in expected["year taken"]}
    at = page("map")
    for choice, counts in expected.items():
        labelled(at.selectbox, "Colour by").set_value(choice).run()
        assert not at.exception, [e.value for e in at.exception]
        names = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
        assert {f"{label} · {n}" for label, n in counts} <= names, names


def test_raw_pairs_benchmark_smoke_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    from support import ROOT

    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "raw_pairs.py"), "--shots", "2", "--models", "phash"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())["models"]["phash"]
    assert result["ingest"] == {"raw_previews": 2, "raw_demosaiced": 2}
    assert {v: result[v]["pairs"] for v in ("demosaic", "preview")} == {"demosaic": 2, "preview": 2}
    assert "| phash (<= 8) | demosaic | 2 |" in proc.stdout
