"""Walk folders, decode and embed every new image, and store it: the indexing half of the product.

Reading, hashing, decoding and preprocessing run in worker threads a batch or two ahead of the model,
so the model rarely waits. Each batch (images, embeddings, paths) is written in one transaction: a run
killed at any moment leaves whole batches only, and a re-run picks up where it stopped because files
whose content already has an embedding for the model are not decoded again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir.config import settings
from cbir.embedders import Embedder, get_embedder
from cbir.errors import BadArgument, BadImage
from cbir.images import Picture, decode, read_image_file, sha256_of, thumbnail_jpeg
from cbir.indexing.categories import category_of
from cbir.photo_metadata import PhotoMetadata, read_metadata
from cbir.storage import collection, db, roots
from cbir.storage.collection import NewImage
from cbir.storage.models import Model, ensure_model, update_model_info


@dataclass
class IngestReport:
    model: str
    files: int = 0
    new_images: int = 0  # rows added to `images`
    embedded: int = 0  # embeddings computed and stored for the model
    already: int = 0  # files whose content already had an embedding for the model
    new_paths: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    startup_seconds: float = 0.0  # the Ray ingest: until the first batch was stored (workers start, models load)
    fitted: int = 0  # images a collection-fitted model (pixels-umap) was (re)fitted on at the end of the run
    raw_previews: int = 0  # new camera RAW images shown by their embedded preview
    raw_demosaiced: int = 0  # new camera RAW images demosaiced (no preview as large as the models' input)
    malformed: list[tuple[str, str, str]] = field(default_factory=list)  # (path, field, reason): stored empty

    @property
    def rate(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    def photo_lines(self) -> list[str]:
        """Summary lines about camera RAW decoding and malformed metadata (none when there was neither)."""
        lines = []
        if self.raw_previews or self.raw_demosaiced:
            lines.append(
                f"camera RAW: {self.raw_previews} shown by their embedded preview, {self.raw_demosaiced} demosaiced"
            )
        if self.malformed:
            lines.append(f"metadata fields left empty as malformed: {len(self.malformed)} (the images were stored):")
            lines += [f"  {path}: {name}: {reason}" for path, name, reason in self.malformed]
        return lines

    def note_photo(self, image: NewImage) -> None:
        """Count how a stored image was decoded and which of its metadata fields were left empty."""
        meta = image.metadata
        if meta is None:
            return
        self.raw_previews += meta.raw_decode == "preview"
        self.raw_demosaiced += meta.raw_decode == "demosaic"
        self.malformed += [(image.path, name, reason) for name, reason in meta.malformed.items()]


@dataclass
class _Outcome:
    """What a worker learned about one file."""

    path: str
    sha256: str | None = None
    image: NewImage | None = None
    error: str | None = None


@dataclass
class _Chunk:
    outcomes: list[_Outcome]
    prepared: Any  # the embedder's prepared batch for outcomes with an image, in order
    decoded: int


def display_path(path: Path) -> str:
    """An absolute path as text Postgres accepts, even for file names that are not valid UTF-8."""
    return os.fsencode(os.path.abspath(path)).decode("utf-8", "backslashreplace")


def discover(paths: Iterable[str | Path], on_error: Callable[[OSError], None] | None = None) -> Iterator[Path]:
    """Every regular file under the given files and folders, sorted, without following directory links.

    on_error: called with the error of a folder that cannot be listed (default: that folder is passed over).
    """
    for root in paths:
        root = Path(root)
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise BadArgument(f"no such file or folder: {root}")
        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                yield Path(dirpath) / name


def process_chunk(paths: list[Path], embedder: Embedder, known: set[str], label: str) -> _Chunk:
    """Read, hash and decode one batch of files and prepare the new ones for the model."""
    outcomes, pictures = [], []
    store_gps = settings().store_gps
    for path in paths:
        outcome = _Outcome(path=display_path(path))
        outcomes.append(outcome)
        try:
            data = read_image_file(path)
        except BadImage as exc:
            outcome.error = str(exc)
            continue
        outcome.sha256 = sha256_of(data)
        if outcome.sha256 in known:
            continue
        try:
            picture = decode(data)
        except BadImage as exc:
            outcome.error = str(exc)
            continue
        outcome.image = NewImage(
            sha256=picture.sha256,
            path=outcome.path,
            category=category_of(path, label),
            width=picture.width,
            height=picture.height,
            format=picture.format,
            nbytes=picture.nbytes,
            thumbnail=thumbnail_jpeg(picture.rgb),
            metadata=_metadata(picture, store_gps),
        )
        pictures.append(picture.rgb)
    prepared = embedder.prepare(pictures) if pictures else None
    return _Chunk(outcomes=outcomes, prepared=prepared, decoded=len(pictures))


def _metadata(picture: Picture, store_gps: bool) -> PhotoMetadata | None:
    """What the camera recorded and how a RAW was decoded; None when there is nothing to store."""
    meta = read_metadata(picture.exif, store_gps=store_gps)
    meta.raw_decode = picture.raw_decode
    return None if meta.empty else meta


def _ahead(fn: Callable[[list[Path]], _Chunk], chunks: list[list[Path]], workers: int) -> Iterator[_Chunk]:
    """Map fn over chunks in worker threads, in order, keeping only a few chunks in memory at once."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[Future[_Chunk]] = []
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.submit(fn, chunk))
            if len(pending) > workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def ingest(
    paths: Iterable[str | Path],
    model: str,
    batch_size: int = 32,
    label: str = "folder",
    workers: int = 2,
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> IngestReport:
    """Embed and store every image under `paths` that the model has not embedded yet."""
    if batch_size < 1:
        raise BadArgument("--batch-size must be at least 1")
    category_of(Path("x/y"), label)  # validate before any work
    paths = list(paths)  # walked, then recorded as roots: the dashboard reads query paths under them only
    files = list(discover(paths))
    embedder = get_embedder(model)  # fails fast, before any file is read
    with db.connection(conn) as conn:
        model_row, known = start_run(conn, embedder, paths)
        report = IngestReport(model=model_row.name, files=len(files))
        chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
        start = time.perf_counter()
        with tqdm(total=len(files), unit="img", desc="ingest", disable=not progress, dynamic_ncols=True) as bar:
            process = lambda chunk: process_chunk(chunk, embedder, known, label)  # noqa: E731
            for chunk in _ahead(process, chunks, workers):
                vectors = encode_chunk(embedder, chunk)
                write_chunk(conn, model_row, chunk, vectors, known, report, staged=embedder.fitted_on_collection)
                bar.update(len(chunk.outcomes))
        if embedder.fitted_on_collection:
            report.fitted = fit_collection(conn, embedder, model_row, force=report.embedded > 0, progress=progress)
        report.seconds = time.perf_counter() - start
        return report


def start_run(conn: psycopg.Connection, embedder: Embedder, paths: list[str | Path]) -> tuple[Model, set[str]]:
    """Register the model and the run's folders; returns the model row and the content hashes a run can skip.

    Shared by the local ingest and the Ray ingest (cbir.indexing.ray_ingest), so both keep the same records.
    """
    model_row = ensure_model(conn, embedder.name, embedder.kind, embedder.dim, embedder.metric, embedder.info())
    roots.record_collection_roots(conn, [display_path(Path(p)) for p in paths if Path(p).is_dir()])
    roots.record_roots(conn, paths)
    return model_row, collection.embedded_sha256s(conn, model_row, staged=embedder.fitted_on_collection)


def encode_chunk(embedder: Embedder, chunk: _Chunk) -> np.ndarray | None:
    """The model's vectors of a chunk's decoded images (a collection-fitted model's stored inputs instead)."""
    encode = embedder.inputs if embedder.fitted_on_collection else embedder.forward
    return encode(chunk.prepared) if chunk.decoded else None


def write_chunk(
    conn: psycopg.Connection,
    model: Model,
    chunk: _Chunk,
    vectors: np.ndarray | None,
    known: set[str],
    report: IngestReport,
    staged: bool = False,
) -> None:
    """Write a chunk's new images with their vectors, and all its paths, in one transaction.

    Files the readers found already stored (no image decoded) and duplicates met earlier (`known`, which grows
    here) become path aliases.
    """
    new_images, rows, aliases = [], [], []
    row = -1
    for outcome in chunk.outcomes:
        if outcome.image is not None:
            row += 1
        if outcome.error:
            report.skipped.append((outcome.path, outcome.error))
        elif outcome.image is None or outcome.sha256 in known:
            report.already += outcome.image is None
            aliases.append((outcome.path, outcome.sha256))
        else:
            assert outcome.sha256 is not None and vectors is not None
            known.add(outcome.sha256)
            new_images.append(outcome.image)
            report.note_photo(outcome.image)
            rows.append(row)
    new_rows, new_paths = collection.write_batch(
        conn, model, new_images, vectors[rows] if rows else None, aliases, staged=staged
    )
    report.new_images += new_rows
    report.new_paths += new_paths
    report.embedded += len(new_images)


def fit_collection(
    conn: psycopg.Connection, embedder: Embedder, model: Model, force: bool = False, progress: bool = True
) -> int:
    """Fit a collection-fitted model on every stored input and swap in all its vectors; returns images fitted.

    Skipped when nothing changed since the last fit (every stored input embedded, fit persisted) unless forced.
    """
    image_ids, inputs = collection.model_inputs(conn, model)
    embedded = collection.embedding_count(conn, model)
    if not force and embedded == len(image_ids) and embedder.is_fitted():
        return 0
    start = time.perf_counter()
    if progress:
        tqdm.write(f"fitting {model.name} on {len(image_ids)} images ...")
    vectors, facts = embedder.fit(inputs)
    collection.replace_embeddings(conn, model, image_ids, vectors)
    facts |= {"fitted_on": len(image_ids), "fit_seconds": round(time.perf_counter() - start, 1)}
    update_model_info(conn, model, facts)
    return len(image_ids)
