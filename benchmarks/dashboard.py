"""Dashboard timings in a real browser, for a real collection and synthetic ones of 100k and 1M images.

For each collection, `streamlit run` of the dashboard serves its own CBIR_HOME on loopback and Debian's
Chromium (headless, no GPU) is driven through Playwright (tests/support/browser.py starts and stops both):

- Home page, new session (the baseline: Streamlit's own start-up in a browser);
- Map page ready in a new session (every mark drawn; cold = first after the server started), and switched to
  within a session (from Home, by the sidebar);
- a box selection of about 1,000 images -> their thumbnails shown;
- bytes the browser received over the WebSocket for a new-session Map (and for Home), and the map figure's JSON;
- search by upload (photos the collection does not hold: mirrored, re-encoded Caltech-101 photos), each in a
  new session, then that session's first Map (the query placed among its neighbours; the Search page's
  distances chart has loaded plotly.js by then), and in the last session the Map again.

The real collection is any CBIR_HOME with a map (--home, --model; e.g. all of Caltech-101 embedded by
efficientnet-lite0, read only). Synthetic collections (--synthetic 100000,1000000) are written straight into a
real database under --synthetic-root, once (reused after): images with generated 8x8 thumbnails and paths,
the tiny random DINOv2's 32-d vectors around one centre per category, and map points in 102 blobs, by COPY;
they have no HNSW index (an upload's search there is an exact scan; search speed is benchmarks/search_bench.py's).
Each figure is the median of --repeats in one run, with the in-process time of the same work beside it.

    python benchmarks/dashboard.py --home /tmp/eval-home --model efficientnet-lite0 --synthetic 100000,1000000
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.browser import CHROMIUM_FLAGS, free_port, running, streamlit_command  # noqa: E402

PLOT = ".st-key-map .js-plotly-plot"
MARKS = (
    "([sel, n, name]) => { const gd = document.querySelector(sel); if (!gd || !gd._fullData) return false;"
    " const marks = gd._fullData.filter(t => !['neighbours', 'query'].includes(t.name))"
    ".filter(t => !t.name.startsWith('matches')).reduce((s, t) => s + (t._length || 0), 0);"
    " return marks === n && (!name || gd._fullData.some(t => t.name === name)); }"
)
THUMBS_LOADED = (
    "n => { const imgs = [...document.querySelectorAll('img[src*=\"/media/\"]')];"
    " return imgs.length >= n && imgs.every(i => i.complete); }"
)
SEARCH_READY = "Upload an image, pick a stored one, or give a path."
TIMEOUT_MS = 600_000
CATEGORIES = 102
DIM_SEED = 7


@dataclass
class Collection:
    label: str
    home: Path
    model: str
    images: int = 0
    marks: int = 0
    figure_bytes: int = 0
    in_process_s: float = 0.0
    box: tuple[float, float, float, float] = (0, 0, 0, 0)  # about 1,000 images, in map coordinates
    boxed: int = 0  # images whose mark centres fall in the box (what the page should list as selected)
    browser: dict[str, list[float]] = field(default_factory=dict)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# --- synthetic collections -------------------------------------------------------------------------------


def tiny_model(root: Path) -> str:
    from cbir.embedders.random_model import save_random_dinov2

    path = root / "tiny-dinov2"
    return str(path if (path / "config.json").exists() else save_random_dinov2(path, size="tiny"))


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Map points like a UMAP of many categories: blobs of different sizes and shapes; Zipf-like category sizes."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, CATEGORIES + 1) ** 0.6
    codes = rng.choice(CATEGORIES, size=n, p=weights / weights.sum())
    grid = np.array([(i % 11, i // 11) for i in range(CATEGORIES)], dtype=np.float64) * 3.0
    centres = grid + rng.uniform(-0.8, 0.8, grid.shape)
    scale = rng.uniform(0.25, 0.9, (CATEGORIES, 2))
    angle = rng.uniform(0, np.pi, CATEGORIES)
    local = rng.standard_normal((n, 2)) * scale[codes]
    c, s = np.cos(angle[codes]), np.sin(angle[codes])
    xy = centres[codes] + np.column_stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]])
    return xy.astype(np.float32), codes


def thumbnail(code: int) -> bytes:
    rgb = tuple(int(v) for v in np.random.default_rng(code).integers(0, 255, 3))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), rgb).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def write_synthetic(n: int, model_path: str) -> None:
    """Images, paths, vectors and a map of n synthetic images in the current CBIR_HOME's (empty) database."""
    from tqdm import tqdm

    from cbir.embedders import get_embedder
    from cbir.storage import db, projections
    from cbir.storage.models import ensure_model

    embedder = get_embedder(model_path)
    xy, codes = blobs(n)
    rng = np.random.default_rng(DIM_SEED)
    centres = rng.standard_normal((CATEGORIES, embedder.dim)).astype(np.float32)
    thumbs = [thumbnail(c) for c in range(CATEGORIES)]
    names = [f"cat{c:03d}" for c in range(CATEGORIES)]
    with db.connect() as conn:
        model = ensure_model(conn, embedder.name, embedder.kind, embedder.dim, embedder.metric, embedder.info())
        conn.execute(f"DROP INDEX IF EXISTS embeddings_hnsw_model_{model.id}")  # exact scans; COPY stays fast
        with conn.transaction(), conn.cursor() as cur:
            columns = "sha256, path, category, width, height, format, bytes, thumbnail"
            with cur.copy(f"COPY images ({columns}) FROM STDIN") as copy:
                for i in tqdm(range(n), desc="images", unit="row", mininterval=5):
                    path = f"/synthetic/{names[codes[i]]}/img_{i:07d}.jpg"
                    copy.write_row((f"{i:064x}", path, names[codes[i]], 8, 8, "JPEG", 300, thumbs[codes[i]]))
            ids = np.array([r[0] for r in cur.execute("SELECT id FROM images ORDER BY id")], dtype=np.int64)
            with cur.copy("COPY image_paths (path, image_id) FROM STDIN") as copy:
                for i, image_id in enumerate(tqdm(ids.tolist(), desc="paths", unit="row", mininterval=5)):
                    copy.write_row((f"/synthetic/{names[codes[i]]}/img_{i:07d}.jpg", image_id))
            with cur.copy("COPY embeddings (image_id, model_id, embedding) FROM STDIN") as copy:
                for start in tqdm(range(0, n, 10_000), desc="vectors", unit="10k rows", mininterval=5):
                    block = centres[codes[start : start + 10_000]]
                    block = block + 0.5 * rng.standard_normal(block.shape).astype(np.float32)
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                    for image_id, vector in zip(ids[start : start + 10_000].tolist(), block.tolist(), strict=True):
                        copy.write_row((image_id, model.id, "[" + ",".join(f"{v:.5f}" for v in vector) + "]"))
        params = {"n_neighbors": 15, "min_dist": 0.0, "metric": "synthetic", "synthetic": True}
        params |= {"trustworthiness": {"n_neighbors": 5, "sample": 0, "metric": "none"}}
        projections.save(conn, model, ids, None, params, 0.0, {}, coords=xy)


def synthetic_home(root: Path, n: int, model_path: str) -> Path:
    home = root / f"synthetic-{n}"
    os.environ["CBIR_HOME"] = str(home)
    from cbir.storage import db, projections
    from cbir.storage.models import resolve_model

    db.pool.cache_clear()
    with db.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    if stored == 0:
        print(f"writing {n:,} synthetic images into {home}", flush=True)
        start = time.perf_counter()
        write_synthetic(n, model_path)
        print(f"  written in {time.perf_counter() - start:.0f} s", flush=True)
    with db.connect() as conn:
        current = projections.latest(conn, resolve_model(conn, model_path).name)
        assert current is not None and current.images == n, f"{home} holds another collection; remove it"
    return home


# --- measurements ----------------------------------------------------------------------------------------


def in_process(c: Collection) -> None:
    """The server's work for a new-session Map, without browser or Streamlit: read points, marks, figure JSON."""
    from cbir.dashboard import charts, map_marks
    from cbir.storage import db, projections
    from cbir.storage.models import resolve_model

    os.environ["CBIR_HOME"] = str(c.home)
    db.pool.cache_clear()
    with db.connect() as conn:
        current = projections.latest(conn, resolve_model(conn, c.model).name)
        start = time.perf_counter()
        points = projections.points(conn, current.id)
        shown = map_marks.layers(points, charts.by_category(points))
        figure = charts.map_figure(shown).to_json()
        c.in_process_s = time.perf_counter() - start
    c.images, c.marks, c.figure_bytes = len(points), sum(len(layer.x) for layer in shown), len(figure)
    c.box, c.boxed = box_of_about(points, shown, 1_000)


def box_of_about(points, shown, wanted: int) -> tuple[tuple[float, float, float, float], int]:
    """A square at least 1/40 of the map wide (about 20 px: a shorter drag is a click) whose marks stand for
    about `wanted` images (a box selects marks by their centres; past the budget a mark is a cell of many),
    the best of 500 marks as centres and three sizes, counting the images of marks within a tenth of its edges
    against it (a pixel of rounding must not change the selection); and that number of images."""
    x, y = np.concatenate([layer.x for layer in shown]), np.concatenate([layer.y for layer in shown])
    counts = np.concatenate([layer.counts for layer in shown])
    tried = np.random.default_rng(0).choice(len(x), size=min(500, len(x)), replace=False)
    best: tuple[int, tuple[float, float, float, float], int] | None = None
    for half in np.array([1, 2, 4]) * max(float(np.ptp(points.x)), float(np.ptp(points.y))) / 80:
        for t in tried:
            n, inner, outer = (
                int(counts[(np.abs(x - x[t]) <= h) & (np.abs(y - y[t]) <= h)].sum())
                for h in half * np.array([1, 0.9, 1.1])
            )
            miss = abs(n - wanted) + (outer - inner)  # marks near the edges count against a box
            if best is None or miss < best[0]:
                box = (float(x[t] - half), float(x[t] + half), float(y[t] - half), float(y[t] + half))
                best = (miss, box, n)
    assert best is not None
    return best[1], best[2]


def new_photos(data: Path, n: int) -> list[Path]:
    """Photos no collection holds: mirrored and re-encoded copies of real ones."""
    out = Path(tempfile.mkdtemp(prefix="cbir-bench-uploads-"))
    photos = sorted(data.rglob("image_*.jpg"))
    for k, src in enumerate(photos[:: max(1, len(photos) // n)][:n]):
        buffer = io.BytesIO()
        ImageOps.mirror(Image.open(src).convert("RGB")).save(buffer, "JPEG", quality=90)
        (out / f"upload_{k}.jpg").write_bytes(buffer.getvalue())
    return sorted(out.iterdir())


class Session:
    """One browser tab (its own context: a new Streamlit session, nothing cached), counting WebSocket bytes."""

    def __init__(self, browser, url: str) -> None:
        self.url, self.context = url, browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.received = 0
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameReceived", self._frame)

    def _frame(self, event: dict) -> None:
        data = event["response"]["payloadData"]
        self.received += len(data) * 3 // 4 if event["response"]["opcode"] == 2 else len(data)  # base64 if binary

    def close(self) -> None:
        self.context.close()

    def home(self) -> None:
        self.page.goto(self.url)
        self.page.get_by_text("Images", exact=True).wait_for()

    def map(self, marks: int, name: str | None = None, via_sidebar: bool = False) -> None:
        if via_sidebar:
            self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Map").click()
        else:
            self.page.goto(f"{self.url}/map")
        self.page.wait_for_function(MARKS, arg=[PLOT, marks, name], polling=50)

    def to_home(self) -> None:
        self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Home").click()
        self.page.get_by_text("Images", exact=True).wait_for()

    def select(self, box: tuple[float, float, float, float]) -> int:
        """Drag the box (map coordinates) on the plot; wait until the selection's thumbnails are shown."""
        corners = self.page.locator(PLOT).evaluate(
            "(gd, b) => { const r = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;"
            " return [r.left + xa._offset + xa.l2p(b[0]), r.top + ya._offset + ya.l2p(b[3]),"
            " r.left + xa._offset + xa.l2p(b[1]), r.top + ya._offset + ya.l2p(b[2])]; }",
            list(box),
        )
        x0, y0, x1, y1 = corners
        self.page.mouse.move(x0, y0)
        self.page.mouse.down()
        self.page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=3)
        self.page.mouse.move(x1, y1, steps=3)
        start = time.perf_counter()
        self.page.mouse.up()
        heading = self.page.get_by_text(re.compile(r"^[\d,]+ selected"))
        heading.wait_for()
        selected = int(heading.inner_text().split()[0].replace(",", ""))
        self.page.wait_for_function(THUMBS_LOADED, arg=min(selected, 60), polling=50)
        self.elapsed = time.perf_counter() - start
        return selected

    def upload(self, photo: Path, k: int) -> None:
        self.page.locator("input[type=file]").set_input_files(str(photo))
        self.page.get_by_text(f"#{k} · ").wait_for()
        self.page.wait_for_function(THUMBS_LOADED, arg=k + 1, polling=50)


def browse(c: Collection, url: str, uploads: list[Path], k: int, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    r: dict[str, list[float]] = {key: [] for key in ("map_cold", "home", "map_warm", "map_nav", "select", "upload")}
    r |= {"map_query": [], "home_bytes": [], "map_bytes": [], "selected": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        for key in ["map_cold"] + ["map_warm"] * repeats:
            s = Session(browser, url)
            r[key].append(timed(lambda s=s: s.map(c.marks)))
            r["map_bytes"].append(s.received)
            s.close()
        for _ in range(repeats):
            s = Session(browser, url)
            r["home"].append(timed(s.home))
            r["home_bytes"].append(s.received)
            s.close()
        s = Session(browser, url)
        s.home()
        for _ in range(repeats):
            r["map_nav"].append(timed(lambda: s.map(c.marks, via_sidebar=True)))
            s.to_home()
        s.map(c.marks, via_sidebar=True)
        for _ in range(min(repeats, 3)):
            r["selected"].append(s.select(c.box))
            r["select"].append(s.elapsed)
            s.page.mouse.dblclick(*page_centre(s.page))  # clear it (a drag inside a selection moves it)
            s.page.get_by_text(re.compile(r"^[\d,]+ selected")).wait_for(state="detached")
        s.close()
        for photo in uploads:  # each in a new session: search by upload, then that session's first Map
            s = Session(browser, url)
            s.page.goto(f"{url}/search")
            s.page.get_by_text(SEARCH_READY).wait_for()
            r["upload"].append(timed(lambda s=s, photo=photo: s.upload(photo, k)))
            s.page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")  # its heatmaps drawn too
            r["map_query"].append(timed(lambda s=s: s.map(c.marks, "query", via_sidebar=True)))
            if photo != uploads[-1]:
                s.close()
        s.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Search").click()
        s.page.get_by_text(SEARCH_READY).wait_for()
        r["map_query_again"] = [timed(lambda: s.map(c.marks, "query", via_sidebar=True))]  # the query is kept
        s.close()
        browser.close()
    c.browser = r


def page_centre(page) -> tuple[float, float]:
    box = page.locator(f"{PLOT} .nsewdrag").first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def serve_and_browse(c: Collection, uploads: list[Path], k: int, repeats: int) -> None:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="cbir-bench-")) / "streamlit.log"
    env = os.environ | {"CBIR_HOME": str(c.home), "CBIR_MODEL": c.model}
    with running(streamlit_command(port), port, log, cwd=ROOT, env=env) as (url, _):
        browse(c, url, uploads, k, repeats)


# --- report ----------------------------------------------------------------------------------------------


def report(collections: list[Collection], k: int, repeats: int) -> None:
    def med(c: Collection, key: str) -> float:
        return statistics.median(c.browser[key])

    print("\n| measurement | " + " | ".join(c.label for c in collections) + " |")
    print("|---|" + "---:|" * len(collections))

    def row(name: str, cell: Callable[[Collection], str]) -> None:
        print(f"| {name} | " + " | ".join(cell(c) for c in collections) + " |")

    row("images on the map", lambda c: f"{c.images:,}")
    row("marks drawn (one per image up to the budget, else cells)", lambda c: f"{c.marks:,}")
    row(f"Home page, new session (s, median of {repeats}; baseline)", lambda c: f"{med(c, 'home'):.2f}")
    row("Map page ready, new session, cold: first after server start (s)", lambda c: f"{c.browser['map_cold'][0]:.2f}")
    row(f"Map page ready, new session (s, median of {repeats})", lambda c: f"{med(c, 'map_warm'):.2f}")
    row("  ... relative to Home (goal at 1M: within 3x)", lambda c: f"{med(c, 'map_warm') / med(c, 'home'):.2f}x")
    row("  ... server's own work in-process (points, marks, figure JSON; s)", lambda c: f"{c.in_process_s:.2f}")
    row(
        "Map page, switched to within a session, first time (s; the browser loads plotly.js)",
        lambda c: f"{c.browser['map_nav'][0]:.2f}",
    )
    row(f"Map page, switched to within a session (s, median of {repeats})", lambda c: f"{med(c, 'map_nav'):.2f}")
    row(
        "Box selection -> thumbnails shown (s, median of 3)",
        lambda c: f"{med(c, 'select'):.2f} ({int(statistics.median(c.browser['selected'])):,} images)",
    )
    row("  ... images the box's marks stand for, in-process (the selection above must match)", lambda c: f"{c.boxed:,}")
    row(
        "  ... box selection relative to the Map switched to",
        lambda c: f"{med(c, 'select') / med(c, 'map_nav'):.2f}x",
    )
    row(
        "WebSocket bytes received, new-session Map (MB)",
        lambda c: f"{statistics.median(c.browser['map_bytes']) / 1e6:.2f}",
    )
    row(
        "WebSocket bytes received, new-session Home (MB)",
        lambda c: f"{statistics.median(c.browser['home_bytes']) / 1e6:.2f}",
    )
    row("Map figure JSON (MB)", lambda c: f"{c.figure_bytes / 1e6:.2f}")
    row("Search by upload, first (s; the server loads the model)", lambda c: f"{c.browser['upload'][0]:.2f}")
    row(
        f"Search by upload (s, median of {len(collections[0].browser['upload']) - 1})",
        lambda c: f"{statistics.median(c.browser['upload'][1:]):.2f}",
    )
    row(
        f"Map after an upload, first in its session (s, median of {len(collections[0].browser['map_query'])}; "
        "query placed among its neighbours)",
        lambda c: f"{med(c, 'map_query'):.2f}",
    )
    row(
        "  ... relative to the Map switched to without a query (goal: within 1.5x)",
        lambda c: f"{med(c, 'map_query') / med(c, 'map_nav'):.2f}x",
    )
    row(
        "  ... relative to the first Map switched to in a session without a query",
        lambda c: f"{med(c, 'map_query') / c.browser['map_nav'][0]:.2f}x",
    )
    row("Map after an upload, again (s)", lambda c: f"{c.browser['map_query_again'][0]:.2f}")
    row(
        "  ... relative to the Map switched to without a query",
        lambda c: f"{c.browser['map_query_again'][0] / med(c, 'map_nav'):.2f}x",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a CBIR_HOME with a stored map (used read only)")
    parser.add_argument("--model", default="efficientnet-lite0", help="the model of --home's map")
    parser.add_argument("--synthetic", default="", help="comma-separated sizes of synthetic collections")
    parser.add_argument("--synthetic-root", type=Path, default=Path(tempfile.gettempdir()) / "cbir-bench-synthetic")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "caltech101")
    parser.add_argument("--uploads", type=int, default=4, help="upload round trips (the first is reported apart)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)

    collections = []
    if args.home:
        collections.append(Collection(f"{args.home.name} ({args.model})", args.home.resolve(), args.model))
    sizes = [int(s) for s in args.synthetic.split(",") if s.strip()]
    if sizes:
        args.synthetic_root.mkdir(parents=True, exist_ok=True)
        model = tiny_model(args.synthetic_root)
        for n in sizes:
            collections.append(Collection(f"synthetic {n:,}", synthetic_home(args.synthetic_root, n, model), model))
    if not collections:
        raise SystemExit("nothing to measure: give --home and/or --synthetic")
    uploads = new_photos(args.data, args.uploads)
    for c in collections:
        in_process(c)
        print(f"{c.label}: {c.images:,} images, {c.marks:,} marks; browser...", flush=True)
        serve_and_browse(c, uploads, args.k, args.repeats)
        print(f"  done; load average {os.getloadavg()}", flush=True)
        report([d for d in collections if d.browser], args.k, args.repeats)  # so far: a later failure loses none
    print(f"\nload average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
