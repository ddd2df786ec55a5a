"""Dashboard timings in a real browser: Map page load with the whole collection, and search by upload.

Starts `streamlit run` on loopback against CBIR_HOME (ingesting --data and fitting the map first when
needed; both are incremental, so a home from `make demo` is reused as it is), then drives Debian's Chromium
through Playwright:

- Map page load: a new browser session opens /map until the plot holds every point (cold = first load after
  the server started, warm = later sessions, the points cached by the server);
- search by upload: from choosing a file until the k result thumbnails are shown, for photos the collection
  does not hold (each a mirrored, re-encoded Caltech-101 photo, so it must be embedded);
- the Map page after such a query (the query placed with the stored UMAP: the first time imports umap).

Each figure is one run's median, with the in-process time of the same work (reading the points and building
the figure; `cbir.lookup`) so that the ratios say what the browser and Streamlit add. Use the model the
collection was embedded with; a random model is fine for timing, never for quality.

    python benchmarks/dashboard.py --home /tmp/cbir-demo --data ../shared/datasets/caltech101 --model DIR
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLOT_HAS = "([n, name]) => { const gd = document.querySelector('.js-plotly-plot');"
PLOT_HAS += " return !!(gd && gd._fullData && gd._fullData.length && gd._fullData[0]._length === n"
PLOT_HAS += " && (!name || gd._fullData.some(t => t.name === name))); }"
TIMEOUT_MS = 300_000


def prepare(data: Path, model: str) -> int:
    """Ingest what is new and fit the map if the collection changed; returns the number of images mapped."""
    from cbir.analysis import projection
    from cbir.indexing.ingest import ingest
    from cbir.storage import db, projections

    report = ingest([data], model, progress=True)
    print(f"ingest: {report.embedded} new embeddings ({report.files} files)", flush=True)
    with db.connect() as conn:
        from cbir.storage.models import resolve_model

        name = resolve_model(conn, model).name
        current = projections.latest(conn, name)
        embedded = conn.execute(
            "SELECT count(*) FROM embeddings e JOIN models m ON m.id = e.model_id WHERE m.name = %s", (name,)
        ).fetchone()[0]
        if current is None or current.images != embedded:
            print(f"fitting the map of {embedded:,} images (n_neighbors 15)", flush=True)
            current = projection.project(conn, name, n_neighbors=15)
    return current.images


def new_photos(data: Path, n: int) -> list[Path]:
    """Photos the collection does not hold: mirrored and re-encoded copies of real ones."""
    out = Path(tempfile.mkdtemp(prefix="cbir-bench-uploads-"))
    photos = sorted(data.rglob("image_*.jpg"))
    sources = photos[:: max(1, len(photos) // n)][:n]
    for n_, src in enumerate(sources):
        buf = io.BytesIO()
        ImageOps.mirror(Image.open(src).convert("RGB")).save(buf, "JPEG", quality=90)
        (out / f"upload_{n_}.jpg").write_bytes(buf.getvalue())
    return sorted(out.iterdir())


def start_server(port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--server.headless", "true"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"streamlit exited:\n{log.read_text()}") from None
            time.sleep(0.5)
    raise SystemExit(f"streamlit did not start:\n{log.read_text()}")


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def in_process(points: int, uploads: list[Path], k: int) -> dict[str, float]:
    """The same work without browser or Streamlit: read the map and build its figure; one lookup."""
    from cbir.dashboard import charts
    from cbir.embedders import get_embedder
    from cbir.retrieval.search import lookup
    from cbir.storage import db, projections
    from cbir.storage.models import resolve_model

    with db.connect() as conn:
        name = resolve_model(conn, None).name
        get_embedder(name)  # loaded once, as the dashboard's cache_resource does
        current = projections.latest(conn, name)

        figure_json: list[str] = []

        def build() -> None:
            figure_json.append(charts.map_figure(projections.points(conn, current.id)).to_json())

        map_s = statistics.median(timed(build) for _ in range(3))
        search_s = statistics.median(timed(lambda p=p: lookup(conn, p.read_bytes(), k=k)) for p in uploads)
    return {"map": map_s, "search": search_s, "payload": len(figure_json[-1])}


def browse(url: str, points: int, uploads: list[Path], k: int, repeats: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    ready = "Upload an image, pick a stored one, or give a path."
    images_loaded = (
        "n => { const imgs = [...document.querySelectorAll('img[src*=\"/media/\"]')];"
        " return imgs.length === n && imgs.every(i => i.complete); }"
    )
    results: dict[str, list[float]] = {
        "map_cold": [],
        "map_warm": [],
        "home": [],
        "map_nav": [],
        "upload": [],
        "map_query": [],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)

        def new_page():
            page = browser.new_page(viewport={"width": 1400, "height": 1000})  # a new Streamlit session
            page.set_default_timeout(TIMEOUT_MS)
            return page

        def open_map(page) -> None:
            page.goto(f"{url}/map")
            page.wait_for_function(PLOT_HAS, arg=[points, None])

        for key in ["map_cold"] + ["map_warm"] * repeats:
            page = new_page()
            results[key].append(timed(lambda page=page: open_map(page)))
            page.close()

        page = new_page()  # baseline: a new session on Home (Streamlit's own start-up in the browser)
        for _ in range(repeats):
            results["home"].append(
                timed(lambda page=page: (page.goto(url), page.get_by_text("Images", exact=True).wait_for()))
            )
        nav = page.locator('[data-testid="stSidebarNav"]')
        for _ in range(repeats):  # within one session: the page's own cost
            results["map_nav"].append(
                timed(
                    lambda page=page, nav=nav: (
                        nav.get_by_role("link", name="Map").click(),
                        page.wait_for_function(PLOT_HAS, arg=[points, None]),
                    )
                )
            )
            nav.get_by_role("link", name="Home").click()
            page.get_by_text("Images", exact=True).wait_for()
        page.close()

        for photo in uploads:
            page = new_page()
            page.goto(f"{url}/search")
            page.get_by_text(ready).wait_for()

            def upload(page=page, photo: Path = photo) -> None:
                page.locator("input[type=file]").set_input_files(str(photo))
                page.get_by_text(f"#{k} · ").wait_for()
                page.wait_for_function(images_loaded, arg=k + 1)  # the query and its k results

            results["upload"].append(timed(upload))
            if photo != uploads[-1]:
                page.close()

        nav = page.locator('[data-testid="stSidebarNav"]')  # the last upload's session: the query is kept
        for _ in range(2):
            results["map_query"].append(
                timed(
                    lambda: (
                        nav.get_by_role("link", name="Map").click(),
                        page.wait_for_function(PLOT_HAS, arg=[points, "query"]),
                    )
                )
            )
            nav.get_by_role("link", name="Search").click()
            page.get_by_text(ready).wait_for()
        browser.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="CBIR_HOME to use (created if missing)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "caltech101")
    parser.add_argument("--model", help="model directory or Hub id (default: a tiny random DINOv2 in --home)")
    parser.add_argument("--uploads", type=int, default=6, help="upload round trips (the first is reported apart)")
    parser.add_argument("--repeats", type=int, default=5, help="warm Map loads")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)

    os.environ["CBIR_HOME"] = str(args.home.resolve())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = args.model
    if model is None:
        from cbir.embedders.random_model import save_random_dinov2

        model = str(save_random_dinov2(args.home / "tiny-dinov2", size="tiny"))
    os.environ["CBIR_MODEL"] = model
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}; model {model}", flush=True)

    points = prepare(args.data, model)
    uploads = new_photos(args.data, args.uploads)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="cbir-bench-")) / "streamlit.log"
    server = start_server(port, log)
    try:
        browser = browse(f"http://127.0.0.1:{port}", points, uploads, args.k, args.repeats)
    finally:
        server.terminate()
        server.wait(timeout=30)
    local = in_process(points, uploads[1:], args.k)

    def med(key: str) -> float:
        return statistics.median(browser[key])

    print(f"\n{points:,} points on the map; k = {args.k}; figure JSON {local['payload'] / 1e6:.2f} MB\n")
    print("| measurement | browser (s) | in-process (s) | ratio |")
    print("|---|---|---|---|")
    print(f"| Home page load, new session (median of {args.repeats}; baseline) | {med('home'):.2f} | - | - |")
    print(
        f"| Map page load, cold (first after server start) | {med('map_cold'):.2f} | {local['map']:.2f} | "
        f"{med('map_cold') / local['map']:.1f} |"
    )
    print(
        f"| Map page load, warm (median of {args.repeats}) | {med('map_warm'):.2f} | {local['map']:.2f} | "
        f"{med('map_warm') / local['map']:.1f} |"
    )
    print(
        f"| Map page, switched to within a session (median of {args.repeats}) | {med('map_nav'):.2f} | "
        f"{local['map']:.2f} | {med('map_nav') / local['map']:.1f} |"
    )
    print(
        f"| Map page load, warm, relative to Home | {med('map_warm'):.2f} | {med('home'):.2f} (Home) | "
        f"{med('map_warm') / med('home'):.2f} |"
    )
    first, rest = browser["upload"][0], statistics.median(browser["upload"][1:])
    print(f"| Search by upload, first (the server loads the model) | {first:.2f} | - | - |")
    print(
        f"| Search by upload (median of {len(uploads) - 1}) | {rest:.2f} | {local['search']:.3f} | "
        f"{rest / local['search']:.1f} |"
    )
    print(f"| Map after an upload, first (imports umap, places the query) | {browser['map_query'][0]:.2f} | - | - |")
    print(f"| Map after an upload, again | {browser['map_query'][1]:.2f} | - | - |")


if __name__ == "__main__":
    main()
