"""Take the documentation's dashboard screenshots (docs/images/<page>.png) with the real browser.

A fresh CBIR_HOME gets a small collection of real Caltech-101 photos (four categories, plus a resized and a
mirrored copy so the Duplicates page has something to show), embedded with the built-in pretrained
efficientnet-lite0, evaluated (`cbir eval`, for the Inspector) and mapped (`cbir project`, for the Map). The
dashboard is served on a free loopback port, as the browser tests serve it (tests/support/browser.py), and
Debian's Chromium visits every page. The PNGs are reduced to a 256-colour palette so they stay small.

    python scripts/screenshots.py                 # all pages (about 3 minutes on 2 cores, most of it UMAP)
    python scripts/screenshots.py --pages search  # some of them
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import CALTECH, make_subset  # noqa: E402  (the tests' helpers: real photos, the real browser)
from support.browser import WAIT_MS, chromium, free_port, running, streamlit_command  # noqa: E402

IMAGES_DIR = ROOT / "docs" / "images"
MODEL = "efficientnet-lite0"
CATEGORIES = {"elephant": 20, "rhino": 20, "dalmatian": 20, "accordion": 20}
VIEWPORT = {"width": 1280, "height": 860}
EDITOR = 'iframe[title="code_editor.code_editor"]'  # the SQL page's editor
QUERY = CALTECH / "elephant" / "image_0050.jpg"  # not in the collection (the first 20 are)


def cbir(*args: str, env: dict[str, str]) -> None:
    """Run `python -m cbir ...` as a user would; stop with its output when it fails."""
    proc = subprocess.run([sys.executable, "-m", "cbir", *args], env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 3):  # 3: finished, some files skipped
        raise SystemExit(f"cbir {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")


def collection(folder: Path) -> Path:
    """Real photos in category folders, plus two edited copies (a resized and a mirrored one)."""
    make_subset(folder, CATEGORIES)
    copies = folder / "copies"
    copies.mkdir()
    with Image.open(CALTECH / "dalmatian" / "image_0001.jpg") as photo:
        photo.resize((photo.width // 2, photo.height // 2)).save(copies / "dalmatian-small.jpg")
    with Image.open(CALTECH / "accordion" / "image_0002.jpg") as photo:
        ImageOps.mirror(photo).save(copies / "accordion-mirrored.jpg")
    return folder


def settled(page) -> None:
    """Wait until the page's script run is over (Streamlit's running indicator is gone), then for drawing."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")
    page.wait_for_timeout(1500)


def search(page, url: str) -> None:
    page.goto(f"{url}/search")
    page.locator("input[type=file]").set_input_files(str(QUERY))
    page.get_by_text("#1 ·").first.wait_for()
    settled(page)  # the distance chart draws after the thumbnails


def map_page(page, url: str) -> None:
    search(page, url)  # the latest query is the Map's red star
    page.goto(f"{url}/map")
    page.locator(".js-plotly-plot").first.wait_for()
    settled(page)


def inspector(page, url: str) -> None:
    page.goto(f"{url}/inspector")
    page.get_by_text("Most confused category pairs").wait_for()
    settled(page)


def duplicates(page, url: str) -> None:
    page.goto(f"{url}/duplicates")
    page.get_by_text("The source of a copy").wait_for()
    settled(page)


def sql(page, url: str) -> None:
    page.goto(f"{url}/sql")
    editor = page.frame_locator(EDITOR).locator(".ace_content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("SELECT * FROM cbir_neighbors((SELECT min(id) FROM images), 6)")
    page.keyboard.press("Control+Enter")
    page.get_by_text("6 rows", exact=True).wait_for()
    settled(page)


def home(page, url: str) -> None:
    page.goto(url)
    page.get_by_text("Folders", exact=True).wait_for()
    settled(page)


PAGES: dict[str, Callable] = {
    "home": home,
    "search": search,
    "map": map_page,
    "inspector": inspector,
    "duplicates": duplicates,
    "sql": sql,
}


def small_png(path: Path) -> None:
    """The screenshot as a 256-colour palette PNG (a third of the size; text stays sharp)."""
    with Image.open(path) as shot:
        shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cbir-screenshots-") as tmp:
        env = os.environ | {"CBIR_HOME": str(Path(tmp) / "home"), "HF_HUB_OFFLINE": "1"}
        env.pop("CBIR_DATABASE_URL", None)
        try:
            cbir("ingest", str(collection(Path(tmp) / "photos")), "--model", MODEL, env=env)
            cbir("eval", "--model", MODEL, env=env)
            cbir("project", "--model", MODEL, env=env)
            port = free_port()
            log = Path(tmp) / "streamlit.log"
            with running(streamlit_command(port), port, log, cwd=ROOT, env=env) as (url, _), chromium() as browser:
                for name in args.pages:
                    page = browser.new_page(viewport=VIEWPORT)
                    page.set_default_timeout(WAIT_MS)
                    PAGES[name](page, url)
                    out = IMAGES_DIR / f"{name}.png"
                    page.screenshot(path=str(out))
                    small_png(out)
                    print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size // 1024} KiB)", flush=True)
                    page.close()
        finally:
            subprocess.run([sys.executable, "-m", "cbir", "db", "stop"], env=env, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
