"""The `cbir` command line: a thin layer that parses options, calls the package and prints results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from cbir.config import settings
from cbir.errors import CbirError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reverse image search on Postgres + pgvector.",
)
db_app = typer.Typer(no_args_is_help=True, help="The database in use: URL, status, stop.")
app.add_typer(db_app, name="db")

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Hub id, local model directory or built-in name [env: CBIR_MODEL]"),
]
EXIT_SKIPPED = 3  # ingest finished, but some files were skipped


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively)")],
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option(help="Images per model batch and per transaction")] = 32,
    label: Annotated[str, typer.Option(help="'folder': category = parent folder name; 'none'")] = "folder",
    workers: Annotated[int, typer.Option(help="Threads reading and decoding ahead of the model")] = 2,
) -> None:
    """Embed every new image under PATHS and store it; re-runs skip what is stored.

    Exit code 0 when every file was stored or already present, 3 when some were skipped (listed).
    """
    from cbir.indexing.ingest import ingest as run_ingest

    report = run_ingest(paths, model or settings().model, batch_size=batch_size, label=label, workers=workers)
    if report.embedded == 0 and not report.skipped:
        typer.echo(f"nothing new to embed: all {report.files} files already stored for {report.model}")
    else:
        typer.echo(
            f"embedded {report.embedded} images with {report.model} in {report.seconds:.1f}s "
            f"({report.rate:.1f} files/s); {report.new_images} new images, "
            f"{report.already} already embedded, {report.new_paths} new paths recorded"
        )
    if report.fitted:
        typer.echo(f"fitted {report.model} on all {report.fitted} stored images; their vectors were replaced")
    if report.skipped:
        typer.echo(f"skipped {len(report.skipped)} files:")
        for path, reason in report.skipped:
            typer.echo(f"  {path}: {reason}")
        raise typer.Exit(EXIT_SKIPPED)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="An image file, or the id of a stored image")],
    k: Annotated[int, typer.Option("-k", help="Number of neighbours")] = 10,
    model: ModelOpt = None,
    category: Annotated[str | None, typer.Option(help="Only return images of this category")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array")] = False,
) -> None:
    """Print the k nearest stored images to QUERY (a stored query image is left out of its own results)."""
    from cbir.retrieval.search import search as run_search

    hits = run_search(query, k=k, model=model, category=category)
    if as_json:
        typer.echo(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    for rank, hit in enumerate(hits, 1):
        typer.echo(f"{rank:>3}  {hit.distance:.4f}  {hit.category or '-':<20}  {hit.path}  (id {hit.id})")


@app.command("eval")
def evaluate(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model(s) to evaluate; repeat for several")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours per query for mAP@k and confusions")] = 10,
    queries: Annotated[int | None, typer.Option(help="Evaluate a seeded sample of N queries")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the query sample and of tie-breaking")] = 0,
    top: Annotated[int, typer.Option(help="Most confused category pairs to show (0: all; all are stored)")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (an object, or an array for several models)")
    ] = False,
) -> None:
    """Leave-one-out retrieval quality per category (categories = folders); results are stored in the DB."""
    from cbir.analysis.evaluate import evaluate as run_eval
    from cbir.analysis.evaluate import metric_keys

    reports = run_eval(model, k=k, sample=queries, seed=seed)
    for r in reports:
        r["confused_pairs"] = len(r["confusions"])
        r["confusions"] = r["confusions"][:top] if top > 0 else r["confusions"]
    if as_json:
        typer.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return
    keys = metric_keys(k)
    for r in reports:
        typer.echo(
            f"{r['model']}: {r['queries']} queries over {r['images']} images, k={k}, {r['method']}, "
            f"{r['seconds']:.1f}s (stored as run {r['run_id']})"
        )
        typer.echo(f"{'':<10}" + "".join(f"{key:>14}" for key in keys))
        for scope in ("overall", "macro"):
            typer.echo(f"{scope:<10}" + "".join(f"{r[scope][key]:>14.4f}" for key in keys))
        worst = sorted(r["categories"], key=lambda c: c["mAP"])[:5]
        typer.echo("worst categories (mAP): " + ", ".join(f"{c['category']} {c['mAP']:.3f}" for c in worst))
        typer.echo(f"most confused pairs (A's queries with top-{k} neighbours in B):")
        for rank, p in enumerate(r["confusions"], 1):
            typer.echo(
                f"{rank:>4}  {p['category']} -> {p['other']}: {p['neighbours']} neighbours "
                f"({p['rate']:.1%} of A's, {p['lift']:.1f}x chance), {p['queries']} queries"
            )


@app.command()
def dupes(
    model: Annotated[str, typer.Option("--model", "-m", help="Model whose distances define copies")] = "phash",
    threshold: Annotated[
        float | None, typer.Option(help="Largest distance between copies (default: per model, phash 8 bits)")
    ] = None,
    of: Annotated[Path | None, typer.Option("--of", help="Where did this image come from: its stored sources")] = None,
    limit: Annotated[int, typer.Option(help="Groups to print (--json: all)")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Exact duplicates (same bytes), near-duplicates and resized versions; or, with --of, a copy's source."""
    from dataclasses import asdict

    from cbir.errors import BadImage, BadQuery
    from cbir.images import read_image_file
    from cbir.retrieval import copies
    from cbir.storage import db
    from cbir.storage.models import resolve_model

    with db.connect() as conn:
        model_row = resolve_model(conn, model)
        limit_t = copies.default_threshold(model_row.name) if threshold is None else threshold
        if of is not None:
            try:
                data = read_image_file(of)  # like search: no FIFO hang, size limit, no half-changed file
            except BadImage as exc:
                raise BadQuery(f"cannot use {of}: {exc}") from None
            found = copies.sources(conn, model_row, data, threshold)
            if as_json:
                typer.echo(
                    json.dumps(
                        {"model": model_row.name, "threshold": limit_t, "sources": [asdict(s) for s in found]}, indent=2
                    )
                )
                return
            if not found:
                typer.echo(f"no stored image within {limit_t:g} of {of} under {model_row.name}")
            for s in found:
                what = "same bytes as" if s.exact else f"distance {s.distance:g} from"
                typer.echo(f"{what} image {s.id}: " + ", ".join(s.paths))
            return
        exact = copies.exact_duplicates(conn)
        groups = copies.near_duplicates(conn, model_row, threshold)
    if as_json:
        payload = {"model": model_row.name, "threshold": limit_t, "exact": [g.as_dict() for g in exact]}
        typer.echo(json.dumps(payload | {"groups": [g.as_dict() for g in groups]}, indent=2))
        return
    typer.echo(f"exact duplicates (the same bytes at several paths): {len(exact)}")
    for g in exact[:limit]:
        typer.echo("  " + " = ".join(g.members[0].paths))
    resized = sum(g.kind == "resized" for g in groups)
    typer.echo(
        f"near-duplicate groups under {model_row.name} (distance <= {limit_t:g}): {len(groups)}, "
        f"{resized} of them resized versions, {sum(len(g.members) for g in groups)} images"
    )
    for n, g in enumerate(groups[:limit], 1):
        typer.echo(f"{n:>4}  {g.kind}, {len(g.members)} images, max distance {g.max_distance:g}")
        for m in g.members:
            typer.echo(f"        {m.width}x{m.height}  {m.path}")


@app.command()
def project(
    model: ModelOpt = None,
    n_neighbors: Annotated[
        str, typer.Option(help="'auto': try 5..100 and keep the best trustworthiness; or a number")
    ] = "auto",
    seed: Annotated[int, typer.Option(help="UMAP random_state (fixed, so maps are reproducible)")] = 42,
) -> None:
    """Fit the 2-D UMAP map of a model's embeddings for the dashboard, and store it (replacing the old one)."""
    from cbir.analysis.projection import parse_neighbors
    from cbir.analysis.projection import project as run_project
    from cbir.storage import db

    with db.connect() as conn:
        p = run_project(conn, model, parse_neighbors(n_neighbors), seed=seed)
    for k, score in p.scores.items():
        typer.echo(f"n_neighbors {k:>3}: trustworthiness {score:.4f}{'  <- kept' if k == p.n_neighbors else ''}")
    typer.echo(f"projected {p.images} images of {p.model} (n_neighbors {p.n_neighbors}) in {p.seconds:.1f}s")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port of the dashboard")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback exposes it")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open it in a browser once up")] = True,
) -> None:
    """Run the Streamlit dashboard (on loopback by default) until interrupted."""
    import signal
    import subprocess
    import threading

    from cbir.dashboard import app as dashboard_app

    # Headless always: otherwise Streamlit's first run asks for an e-mail address on stdin. cbir opens the
    # browser itself instead, once the server answers. The options are flags, not a config file, so an
    # installed wheel runs exactly as a clone does (a .streamlit/config.toml in the working folder still adds
    # to them).
    upload_mb = max(1, settings().max_upload_bytes // (1024 * 1024))
    command = [sys.executable, "-m", "streamlit", "run", dashboard_app.__file__, "--server.address", host]
    command += ["--server.port", str(port), "--server.headless", "true", "--server.maxUploadSize", str(upload_mb)]
    command += ["--browser.gatherUsageStats", "false"]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    typer.echo(f"dashboard: {url}  (Ctrl-C stops it)")
    if open_browser:
        threading.Thread(target=_open_when_up, args=(url,), daemon=True).start()
    server = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())  # stopping cbir serve stops the server too
    try:
        code = server.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the server as well (same process group)
        code = server.wait()
    raise typer.Exit(code)


def _open_when_up(url: str, seconds: float = 120) -> None:
    import time
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.5)


@db_app.command("url")
def db_url() -> None:
    """Print the libpq URL of the database (starting the embedded server if needed), e.g. for psql."""
    from cbir.storage import db

    typer.echo(db.database_url())


@db_app.command("status")
def db_status() -> None:
    """Server, pgvector version, migrations and row counts."""
    from cbir.storage import collection, db
    from cbir.storage.migrate import applied_migrations

    url = db.database_url()
    with db.connect(url) as conn:
        server, vector = db.server_versions(conn)
        migrations = applied_migrations(conn)
        counts = collection.counts(conn)
    typer.echo(f"database:   {db.database_location(url)}")
    typer.echo(f"postgres:   {server}; pgvector {vector}")
    typer.echo(f"migrations: {', '.join(migrations)}")
    typer.echo(f"images:     {counts['images']} ({counts['paths']} paths, {counts['categories']} categories)")
    for m in counts["models"]:
        typer.echo(f"model:      {m['name']} [{m['kind']}({m['dim']})]: {m['embeddings']} embeddings")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres server (it otherwise keeps running between commands)."""
    from cbir.storage import db

    typer.echo("stopped" if db.stop_embedded() else "not running")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except CbirError as exc:
        print(f"cbir: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except psycopg.OperationalError as exc:  # the server went away mid-command: whole transactions only were kept
        from cbir.storage.db import describe_location, first_line

        print(
            f"cbir: error: lost the connection to {describe_location()} ({first_line(exc)}); "
            "nothing half-written was kept: run the command again",
            file=sys.stderr,
        )
        sys.exit(2)
