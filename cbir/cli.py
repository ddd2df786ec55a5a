"""The `cbir` command line: a thin layer that parses options, calls the package and prints results."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer

from cbir.config import settings
from cbir.errors import CbirError

if TYPE_CHECKING:  # imported where used: the command line starts fast
    from cbir.retrieval.copies import Origins
    from cbir.storage.indexes import IndexFacts

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reverse image search on Postgres + pgvector.",
)
db_app = typer.Typer(no_args_is_help=True, help="The database in use: URL, status, stop.")
app.add_typer(db_app, name="db")
users_app = typer.Typer(no_args_is_help=True, help="Who may open the dashboard: add, list, remove users.")
app.add_typer(users_app, name="users")
tag_app = typer.Typer(no_args_is_help=True, help="Tags on images: add, remove, list (table image_tags).")
app.add_typer(tag_app, name="tag")

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Hub id, local model directory or built-in name [env: CBIR_MODEL]"),
]
EXIT_SKIPPED = 3  # ingest finished, but some files were skipped
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively)")],
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option(help="Images per model batch and per transaction")] = 32,
    label: Annotated[str, typer.Option(help="'folder': category = parent folder name; 'none'")] = "folder",
    workers: Annotated[int, typer.Option(help="Threads reading and decoding ahead of the model")] = 2,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run on a Ray cluster: 'local' (one started for the run), 'auto', HOST:PORT or ray://HOST:PORT "
            "(needs Ray: pip install 'cbir\\[ray]')",
        ),
    ] = None,
    actors: Annotated[int, typer.Option(help="With --ray: model actors (one GPU each when the cluster has GPUs)")] = 1,
    writers: Annotated[int, typer.Option(help="With --ray: database writers (one connection each)")] = 2,
) -> None:
    """Embed every new image under PATHS and store it; re-runs skip what is stored.

    Exit code 0 when every file was stored or already present, 3 when some were skipped (listed).
    """
    name = model or settings().model
    if ray is None:
        from cbir.indexing.ingest import ingest as run_ingest

        report = run_ingest(paths, name, batch_size=batch_size, label=label, workers=workers)
    else:
        from cbir.indexing import ray_ingest

        report = ray_ingest.ingest(
            paths, name, address=ray, batch_size=batch_size, label=label, actors=actors, writers=writers
        )
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
    for line in report.photo_lines():
        typer.echo(line)
    _exit_if_skipped(report.skipped)


def _exit_if_skipped(skipped: list[tuple[str, str]]) -> None:
    """List the files a run skipped, each with its reason, and end with exit code 3 when there were any."""
    if skipped:
        typer.echo(f"skipped {len(skipped)} files:")
        for path, reason in skipped:
            typer.echo(f"  {path}: {reason}")
        raise typer.Exit(EXIT_SKIPPED)


@app.command()
def sync(
    paths: Annotated[list[Path], typer.Argument(help="Folders (or files) the collection should match")],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model(s) that embed new images (default: every model in the database)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change, and change nothing")] = False,
    label: Annotated[
        str, typer.Option(help="'folder': categories follow folders; 'none': kept (new images get none)")
    ] = "folder",
    batch_size: Annotated[int, typer.Option(help="Images per model batch and per transaction, as ingest")] = 32,
    change_batch: Annotated[int, typer.Option(help="Paths or images changed per transaction")] = 1000,
    workers: Annotated[int, typer.Option(help="Threads reading files ahead")] = 2,
) -> None:
    """Make the collection match PATHS: ingest new files, follow moves and renames by content, forget deleted files.

    Exit code 0, 3 when some new files were skipped (listed), 2 on errors (a missing or empty folder is refused).
    """
    from cbir.indexing.sync import sync as run_sync

    r = run_sync(paths, model, label, dry_run, batch_size=batch_size, change_batch=change_batch, workers=workers)
    counts = f"moved {r.moved}, relabelled {r.relabelled}, removed {r.removed}, unchanged {r.unchanged}"
    added = f"would add up to {r.added} (files whose bytes are not stored)" if dry_run else f"added {r.added}"
    typer.echo(f"{added}, {counts}")
    if r.copies or r.paths_forgotten:
        typer.echo(f"paths: {r.paths_forgotten} forgotten, {r.copies} new copies of stored images")
    for report in r.ingests:
        typer.echo(f"embedded {report.embedded} images with {report.model} in {report.seconds:.1f}s")
    if r.unreadable:
        typer.echo(f"kept {len(r.unreadable)} stored paths that exist but cannot be read now:")
        for path, reason in r.unreadable:
            typer.echo(f"  {path}: {reason}")
    if dry_run:
        typer.echo("nothing was changed (--dry-run)")
    _exit_if_skipped(r.skipped)


@app.command()
def remove(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to forget (they need not exist any more)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be removed, and change nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    everything: Annotated[bool, typer.Option("--all", help="With --yes: allow removing every image")] = False,
) -> None:
    """Forget files and folders: their paths, and images left without a path (embeddings, map points, inputs).

    Image files on disk are never touched. Exit code 2 when no path given is in the collection.
    """
    from cbir.errors import BadArgument
    from cbir.indexing.remove import plan_removal
    from cbir.indexing.remove import remove as run_remove

    found = plan_removal(paths)
    for path in found.unmatched:
        typer.echo(f"cbir: not in the collection: {path}", err=True)
    if not found.prefixes:
        raise typer.Exit(2)
    plan = found.plan
    typer.echo(
        f"{'would remove' if dry_run else 'removing'} {plan.paths} paths: {plan.images} images go (with their "
        f"embeddings, map points and stored inputs), {plan.kept} keep another path"
    )
    for category, n in plan.per_category:
        typer.echo(f"  category {category or '(none)'}: {n} images")
    for name, n in plan.per_model:
        typer.echo(f"  model {name}: {n} embeddings")
    if dry_run:
        typer.echo("nothing was changed (--dry-run)")
        return
    if plan.everything:
        if yes and not everything:
            raise BadArgument(f"this removes every image in the collection ({plan.total_images}); pass --yes --all")
        if not yes:
            typer.confirm(f"This removes EVERY image in the collection ({plan.total_images}). Continue?", abort=True)
            typer.confirm("Really remove all of them? There is no undo", abort=True)
    elif not yes:
        typer.confirm(f"Remove {plan.paths} paths and {plan.images} images?", abort=True)
    r = run_remove(found.prefixes)
    typer.echo(f"removed {r.images} images and {r.paths} paths")


@app.command()
def relabel(
    from_folders: Annotated[
        bool, typer.Option("--from-folders", help="Category = the folder most of an image's paths are in")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change, and change nothing")] = False,
) -> None:
    """Recompute every image's category from its current paths (ties: the alphabetically first folder)."""
    from cbir.errors import BadArgument
    from cbir.indexing.remove import relabel as run_relabel

    if not from_folders:
        raise BadArgument("relabel needs --from-folders (categories come from folders; there is no other source)")
    r = run_relabel(dry_run=dry_run)
    typer.echo(f"{'would relabel' if dry_run else 'relabelled'} {r.relabelled} of {r.images} images")
    for (old, new), n in sorted(r.changes.items(), key=lambda c: (-c[1], str(c[0]))):
        typer.echo(f"  {old or '(none)'} -> {new or '(none)'}: {n}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="An image file, or the id of a stored image")],
    k: Annotated[int, typer.Option("-k", help="Number of neighbours")] = 10,
    model: ModelOpt = None,
    category: Annotated[str | None, typer.Option(help="Only return images of this category")] = None,
    taken_after: Annotated[
        datetime | None, typer.Option(formats=TIME_FORMATS, help="Only photos taken at or after this (camera's clock)")
    ] = None,
    taken_before: Annotated[
        datetime | None, typer.Option(formats=TIME_FORMATS, help="Only photos taken before this (camera's clock)")
    ] = None,
    camera: Annotated[
        str | None, typer.Option(help="Only photos from a camera whose name contains this (any case), e.g. iphone")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only images with this tag (cbir tag add)")] = None,
    not_tag: Annotated[str | None, typer.Option(help="Only images without this tag")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array")] = False,
) -> None:
    """Print the k nearest stored images to QUERY (a stored query image is left out of its own results)."""
    from cbir.retrieval.search import search as run_search
    from cbir.storage.neighbours import PhotoFilter

    photo = PhotoFilter(taken_after=taken_after, taken_before=taken_before, camera=camera, tag=tag, not_tag=not_tag)
    hits = run_search(query, k=k, model=model, category=category, photo=photo)
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
def suspects(
    model: ModelOpt = None,
    top: Annotated[int, typer.Option(help="Images to print, most suspect first (all are stored)")] = 20,
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours that vote, near copies left out")] = 10,
    sort: Annotated[
        str, typer.Option(help="Order: score (most suspect first), uniqueness or representativeness (highest first)")
    ] = "score",
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Score again even when a fresh stored run exists")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: the run and its top images")] = False,
) -> None:
    """Images that are probably in the wrong folder: their neighbours disagree with their category.

    Scores are stored per model (suspect_runs, suspect_scores) and reused until the collection changes.
    """
    from cbir.analysis.suspects import suspects as run_suspects

    report = run_suspects(model, top=top, k=k, recompute=recompute, order=sort)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    run = report.run
    how = "reused stored run" if report.reused else f"scored in {run.seconds:.1f}s, stored as run"
    typer.echo(f"{run.model}: {run.images} images, k={run.k} ({how} {run.id})")
    typer.echo(f"{'id':>7}  {'score':>5}  {'category':<20} {'suggested':<20} {'nearest evidence':<28} path")
    for r in report.rows:
        near = report.evidence(r, limit=1)
        evidence = f"#{near[0]['id']} d={near[0]['distance']:.3f}" if near else "-"
        typer.echo(
            f"{r.id:>7}  {r.score:>5.3f}  {r.category or '-':<20} {r.suggested or '-':<20} {evidence:<28} {r.path}"
        )


@app.command()
def dupes(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model(s) whose neighbours are --of's candidates (default: every stored copy-finding model), "
            "or whose distances define groups (default: phash when stored)",
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Largest distance between copies (default: per model, phash 8 bits)")
    ] = None,
    of: Annotated[Path | None, typer.Option("--of", help="Where did this image come from: its stored sources")] = None,
    verify: Annotated[
        bool | None,
        typer.Option(help="Check candidates by matching keypoints (default: on with --of, off for groups)"),
    ] = None,
    min_inliers: Annotated[
        int | None, typer.Option(help="Keypoints that must agree for a copy (default: chosen by the benchmark)")
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(help="Share of keypoint matches that must agree for a copy (default: chosen by the benchmark)"),
    ] = None,
    candidates: Annotated[int | None, typer.Option(help="--of: nearest images per model that are checked")] = None,
    limit: Annotated[int, typer.Option(help="Groups to print (--json: all)")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Exact duplicates (same bytes), near-duplicates and resized versions; or, with --of, a copy's source."""
    from cbir.errors import BadArgument, BadImage, BadQuery
    from cbir.images import read_image_file
    from cbir.retrieval import copies
    from cbir.retrieval.verify import MIN_AGREEMENT, MIN_INLIERS
    from cbir.storage import db

    inliers = MIN_INLIERS if min_inliers is None else min_inliers
    agreement = MIN_AGREEMENT if min_agreement is None else min_agreement
    with db.connect() as conn:
        if of is not None:
            try:
                data = read_image_file(of)  # like search: no FIFO hang, size limit, no half-changed file
            except BadImage as exc:
                raise BadQuery(f"cannot use {of}: {exc}") from None
            k = copies.CANDIDATES if candidates is None else candidates
            models = copies.copy_models(conn, model)
            found = copies.sources(conn, data, models, threshold, verify is not False, inliers, agreement, k)
            _print_origins(found, of, threshold, as_json)
            return
        if model and len(model) > 1:
            raise BadArgument("groups use one model's distances: give --model once")
        model_row = copies.model_for(conn, model[0] if model else None)
        limit_t = copies.default_threshold(model_row.name) if threshold is None else threshold
        exact = copies.exact_duplicates(conn)
        groups = copies.near_duplicates(conn, model_row, threshold)
        if verify:
            groups = copies.verify_groups(conn, groups, inliers, agreement, progress=True)
    if as_json:
        payload = {"model": model_row.name, "threshold": limit_t, "exact": [g.as_dict() for g in exact]}
        payload |= {"verified": bool(verify), "min_inliers": inliers if verify else None}
        payload |= {"min_agreement": agreement if verify else None}
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
    if verify:
        lookalike = sum(g.kind == "look-alike" for g in groups)
        typer.echo(
            f"checked by keypoints (>= {inliers} and {agreement:.0%} of matches agree): "
            f"{len(groups) - lookalike} copies, {lookalike} look-alikes"
        )
    for n, g in enumerate(groups[:limit], 1):
        typer.echo(f"{n:>4}  {g.kind}, {len(g.members)} images, max distance {g.max_distance:g}")
        for m in g.members:
            evidence = f"  ({m.inliers} keypoints agree{': ' + m.transform if m.transform else ''})"
            typer.echo(f"        {m.width}x{m.height}  {m.path}" + (evidence if m.inliers is not None else ""))


def _print_origins(found: Origins, of: Path, threshold: float | None, as_json: bool) -> None:
    """`dupes --of`'s answer: the sources with their evidence, and the look-alikes verification rejected."""
    if as_json:
        payload = {"models": found.models, "verified": found.verified, "min_inliers": found.min_inliers}
        payload |= {"min_agreement": found.min_agreement}
        payload |= {"threshold": threshold, "seconds": round(found.seconds, 3)}
        payload |= {"sources": [s.as_dict() for s in found.sources], "rejected": [s.as_dict() for s in found.rejected]}
        typer.echo(json.dumps(payload, indent=2))
        return
    under = ", ".join(found.models)
    if not found.sources and not found.rejected:
        within = f"within {threshold:g}" if threshold is not None else "within the copy threshold"
        typer.echo(f"no stored image {within} of {of} under {under}")
    elif not found.sources:
        typer.echo(f"no copy of {of}: its {len(found.rejected)} nearest images under {under} are look-alikes")
    for s in found.sources:
        if s.exact:
            typer.echo(f"same bytes as image {s.id}: " + ", ".join(s.paths))
            continue
        near = f"{s.model} distance {s.distance:.3g} as {s.variant!r}"
        if s.match is None:  # --no-verify: near, not checked
            typer.echo(f"{near} from image {s.id}: " + ", ".join(s.paths))
            continue
        how = f"{s.inliers} keypoints agree, {s.match.agreement:.0%} of matches; {near}"
        typer.echo(f"copy of image {s.id}, {s.transform} ({how}): " + ", ".join(s.paths))
    if found.rejected:
        typer.echo(
            f"{len(found.rejected)} look-alikes rejected (a copy needs {found.min_inliers} agreeing keypoints, "
            f"{found.min_agreement:.0%} of its matches): "
            + ", ".join(f"image {s.id} ({s.inliers or 0})" for s in found.rejected)
        )


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

    from cbir.auth.policy import is_loopback
    from cbir.auth.secrets import login_configured
    from cbir.dashboard.launch import streamlit_command
    from cbir.errors import BadArgument
    from cbir.storage import db

    if not is_loopback(host):
        with db.connect() as conn:
            configured = login_configured(conn)
        if not configured:
            raise BadArgument(
                f"--host {host} would expose the dashboard without a login: add a user first (cbir users add NAME), "
                "or configure st.login ([auth] and [cbir] oidc_allowed in .streamlit/secrets.toml; pip install "
                "'cbir[oidc]')"
            )
    command = streamlit_command(host, port)
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


@app.command("index")
def index(
    model: ModelOpt = None,
    index_type: Annotated[
        str | None,
        typer.Option(
            "--type", help="vector, halfvec (half the size) or bit-rerank (binary quantization, re-ranked exactly)"
        ),
    ] = None,
    m: Annotated[int, typer.Option("--m", help="HNSW links per node (denser graph: better recall, slower build)")] = 16,
    ef_construction: Annotated[int, typer.Option(help="HNSW candidate list while building")] = 64,
) -> None:
    """Rebuild a model's HNSW index as another type or with other parameters; searches keep working meanwhile."""
    import time

    from tqdm import tqdm

    from cbir.storage import db, indexes
    from cbir.storage.models import IndexChoice, resolve_model

    url = db.database_url()
    with db.connect(url) as conn:
        model_row = resolve_model(conn, model)
    choice = IndexChoice(index_type or model_row.index_choice.type, m, ef_construction)
    indexes.check_choice(model_row, choice)
    start = time.perf_counter()
    with tqdm(unit="row", desc="index", dynamic_ncols=True) as bar:

        def show(done: int, total: int) -> None:
            bar.total = total or None
            bar.n = done
            bar.refresh()

        facts = indexes.rebuild(url, model_row, choice, on_progress=show)
    typer.echo(f"rebuilt the index of {model_row.name} in {time.perf_counter() - start:.1f}s: {_describe_index(facts)}")


def _describe_index(facts: IndexFacts) -> str:
    size = "missing (run cbir index)" if facts.bytes is None else f"{facts.bytes / 1024 / 1024:.1f} MB"
    rebuilding = "; a rebuild is in progress or was interrupted" if facts.building else ""
    return f"HNSW {facts.type} (m {facts.m}, ef_construction {facts.ef_construction}), {size}{rebuilding}"


@db_app.command("status")
def db_status(
    schema: Annotated[
        bool, typer.Option("--schema", help="Also every table and column with its meaning, and the SQL functions")
    ] = False,
) -> None:
    """Server, pgvector version, migrations and row counts."""
    from cbir.storage import collection, db, indexes
    from cbir.storage import schema as catalog
    from cbir.storage.migrate import applied_migrations

    url = db.database_url()
    with db.connect(url) as conn:
        server, vector = db.server_versions(conn)
        migrations = applied_migrations(conn)
        counts = collection.counts(conn)
        index_facts = {f.model: f for f in indexes.statuses(conn)}
        tables, functions = (catalog.tables(conn), catalog.functions(conn)) if schema else ([], [])
    typer.echo(f"database:   {db.database_location(url)}")
    typer.echo(f"postgres:   {server}; pgvector {vector}")
    typer.echo(f"migrations: {', '.join(migrations)}")
    typer.echo(f"images:     {counts['images']} ({counts['paths']} paths, {counts['categories']} categories)")
    for m in counts["models"]:
        typer.echo(f"model:      {m['name']} [{m['kind']}({m['dim']})]: {m['embeddings']} embeddings")
        typer.echo(f"  index:    {_describe_index(index_facts[m['name']])}")
    for table in tables:
        console = "the SQL console reads it" if table.reader else "not readable by the SQL console"
        typer.echo(f"\ntable {table.name} ({table.rows} rows; {console}): {table.comment}")
        name_width = max(len(c.name) for c in table.columns)
        type_width = max(len(c.type) for c in table.columns)
        for c in table.columns:
            typer.echo(f"  {c.name:<{name_width}}  {c.type:<{type_width}}  {c.comment}")
    if functions:
        typer.echo("\nfunctions:")
    for f in functions:
        typer.echo(f"  {f.signature} -> {f.result}\n      {f.comment}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres server (it otherwise keeps running between commands)."""
    from cbir.storage import embedded

    typer.echo("stopped" if embedded.stop() else "not running")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name: 1 to 64 letters, digits or . _ @ -")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (scripts)")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Set a new password for an existing user (their sessions end)")
    ] = False,
) -> None:
    """Add a dashboard user; the password is asked twice, not shown, and stored as a salted argon2 hash."""
    from cbir.auth import users
    from cbir.storage import db

    users.check_name(name)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with db.connect() as conn:
        new = users.add_user(conn, name, password, replace=replace)
    typer.echo(f"added user {name}" if new else f"set a new password for {name}; their open sessions end")


@users_app.command("list")
def users_list() -> None:
    """The dashboard's users (names and dates; hashes are never shown)."""
    from cbir.auth import users
    from cbir.storage import db

    with db.connect() as conn:
        accounts = users.list_users(conn)
    if not accounts:
        typer.echo("no users: the dashboard opens without a login, and only on loopback (cbir users add NAME)")
    for a in accounts:
        when = f"{a.created_at:%Y-%m-%d %H:%M}"
        typer.echo(f"{a.name}  added {when}  password set {a.password_changed_at:%Y-%m-%d %H:%M}")


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="The user to remove")]) -> None:
    """Remove a dashboard user; their open sessions end at their next click."""
    from cbir.auth import users
    from cbir.storage import db

    with db.connect() as conn:
        users.remove_user(conn, name)
    typer.echo(f"removed user {name}")


RefsArg = Annotated[
    list[str] | None, typer.Argument(help="Image ids or paths (any of an image's paths)", show_default=False)
]
FromOpt = Annotated[Path | None, typer.Option("--from", help="A file of image ids or paths, one a line")]


def _refs(refs: list[str] | None, from_file: Path | None) -> list[str]:
    from cbir.retrieval.tagging import read_refs

    return list(refs or []) + (read_refs(from_file) if from_file is not None else [])


@tag_app.command("add")
def tag_add(
    tag: Annotated[str, typer.Argument(help="The tag: 1 to 64 characters, e.g. review or wrong-folder")],
    refs: RefsArg = None,
    from_file: FromOpt = None,
    note: Annotated[str | None, typer.Option(help="A note stored with the tag (up to 1000 characters)")] = None,
) -> None:
    """Tag images, all in one transaction: one unknown id or path tags none of them."""
    from cbir.retrieval.tagging import tag as run_tag

    added = run_tag(tag, _refs(refs, from_file), note=note)
    typer.echo(f"tagged {added} more images {tag!r} (the others given had it already)")


@tag_app.command("remove")
def tag_remove(
    tag: Annotated[str, typer.Argument(help="The tag to take off")],
    refs: RefsArg = None,
    from_file: FromOpt = None,
    every: Annotated[bool, typer.Option("--all", help="Take the tag off every image that has it")] = False,
) -> None:
    """Take a tag off images (or, with --all, off every image)."""
    from cbir.errors import BadArgument
    from cbir.retrieval.tagging import untag

    wanted = _refs(refs, from_file)
    if every == bool(wanted):
        raise BadArgument("give image ids or paths, or --all (not both)")
    removed = untag(tag, None if every else wanted)
    typer.echo(f"removed tag {tag!r} from {removed} images")


@tag_app.command("list")
def tag_list(
    tag: Annotated[str | None, typer.Argument(help="One tag: list its images")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Every tag with its number of images, or one tag's images (id, path, category, who, when, note)."""
    from cbir.storage import db
    from cbir.storage import tags as tag_store

    with db.connect() as conn:
        if tag is None:
            rows = [t.as_dict() for t in tag_store.counts(conn)]
            lines = [f"{r['images']:>7}  {r['tag']}  (last {r['last_tagged'][:16]})" for r in rows]
        else:
            rows = [t.as_dict() for t in tag_store.images_of(conn, tag)]
            lines = [f"{r['id']:>7}  {r['category'] or '-':<20}  {r['path']}  ({r['who']})" for r in rows]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for line in lines or ["no tags yet (cbir tag add TAG ID_OR_PATH...)" if tag is None else f"no image has {tag!r}"]:
        typer.echo(line)


@app.command()
def export(
    tag: Annotated[str | None, typer.Option(help="Only images with this tag")] = None,
    category: Annotated[str | None, typer.Option(help="Only images of this category")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Write to this file (default: stdout)")] = None,
) -> None:
    """Export images (all, or those of a tag and/or category): id, paths, category, tags, time taken, camera."""
    from cbir.retrieval.export import export_text, selection
    from cbir.storage import db

    with db.connect() as conn:
        text = export_text(conn, selection(conn, tag, category), fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        from cbir.errors import BadArgument

        raise BadArgument(f"cannot write {out}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {out}")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except CbirError as exc:
        print(f"cbir: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except psycopg.OperationalError as exc:  # the server went away mid-command: whole transactions only were kept
        from cbir.errors import first_line
        from cbir.storage.db import describe_location

        print(
            f"cbir: error: lost the connection to {describe_location()} ({first_line(exc)}); "
            "nothing half-written was kept: run the command again",
            file=sys.stderr,
        )
        sys.exit(2)
