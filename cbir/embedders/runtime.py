"""OpenVINO for every vector model's forward pass on the CPU; PyTorch stays the reference and the fallback.

Why: in one run of benchmarks/embed_bench.py (BENCHMARKS.md, "OpenVINO runtime") the same modules compiled by
OpenVINO ran dinov2-small several times and efficientnet-lite0 many times faster than eager PyTorch, near the
machine's GEMM rate, with the same vectors (cosine to PyTorch's 1 - 1e-10).

Why plain `openvino` and not optimum-intel: `openvino.convert_model` takes any `torch.nn.Module`, so one code path
serves Hugging Face backbones and the hand-written efficientnet-lite0 (optimum-intel exports Hub architectures
only), and the `openvino` wheel has no dependencies beside numpy. `pip install optimum-intel` (2.2) would
replace the pinned CPU torch 2.13.0 with a CUDA torch 2.14, add torchvision (which breaks that torch here),
downgrade transformers 5.24 to 5.5 and pull nncf.

How (CBIR_RUNTIME=auto|torch|openvino; auto = OpenVINO on the CPU when it is installed and the model converts):
- The embedder hands over its pooled forward pass (pixels -> un-normalised vector) as one torch module. It is
  converted with a dynamic batch and the rest of the input shape fixed (batches of another shape run on PyTorch),
  saved as OpenVINO IR (float32 weights) under CBIR_CACHE/openvino, keyed by model name, a hash of the weights,
  the openvino, torch and cbir-format versions, so a second process reads the IR instead of converting again.
- At first conversion the IR's vectors are compared with PyTorch's on a few generated images; below cosine
  0.9999 the runtime is refused. Refusals and conversion failures print one line, fall back to PyTorch, and
  are cached too (a new openvino, torch or set of weights retries).
- CBIR_PRECISION: float32 -> OpenVINO's f32 inference precision, said explicitly because OpenVINO defaults to
  bf16 on CPUs with AMX; bfloat16 -> its bf16 hint on CPUs that have BF16, else PyTorch's autocast; int8 stays on
  PyTorch (OpenVINO's int8 needs a model quantised by NNCF, another dependency and calibration data).
- Threads: as many as torch uses (OMP_NUM_THREADS / torch.set_num_threads), not pinned to cores, so the decode
  workers and the database run beside them (ingest end to end, BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cbir.config import settings
from cbir.errors import BadArgument, ConfigError

FORMAT = 1  # the saved layout and the meaning of the key; bump to convert every model again
AGREEMENT = 0.9999  # least cosine between OpenVINO's and PyTorch's vector of each probe image
PROBES = 4


class Pooled(torch.nn.Module):
    """An embedder's pixels -> pooled (un-normalised) vector as one module: what is converted and compared."""

    def __init__(self, model: torch.nn.Module, pool: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model = model  # registered, so the weights hash covers it
        self.pool = pool

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.pool(pixels).float()


class OpenVinoForward:
    """A compiled model for one input shape (any batch size); None for other shapes, which PyTorch then runs."""

    def __init__(self, compiled: Any, shape: tuple[int, ...], precision: str) -> None:
        self.compiled, self.shape, self.precision = compiled, shape, precision
        self.lock = threading.Lock()  # one infer request: dashboard sessions call from several threads

    def __call__(self, pixels: torch.Tensor) -> np.ndarray | None:
        if tuple(pixels.shape[1:]) != self.shape:
            return None
        array = np.ascontiguousarray(pixels.numpy(), dtype=np.float32)
        with self.lock:
            return np.array(self.compiled(array, share_inputs=True)[0], dtype=np.float32)


def notice(message: str) -> None:
    """One line on stderr: why a model runs on PyTorch after all."""
    print(f"cbir: {message}", file=sys.stderr, flush=True)


def probe_images() -> list[Image.Image]:
    """A few deterministic images with smooth structure and texture, for the agreement check (no files needed)."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(PROBES):
        coarse = rng.random((6 + 2 * i, 8 + 2 * i, 3)) * 255
        smooth = Image.fromarray(coarse.astype(np.uint8)).resize((320, 256), Image.Resampling.BICUBIC)
        grain = rng.normal(0, 12, (256, 320, 3))
        images.append(Image.fromarray(np.clip(np.asarray(smooth) + grain, 0, 255).astype(np.uint8)))
    return images


def wanted(device: torch.device, precision: str) -> str | None:
    """The OpenVINO inference precision to use, or None for PyTorch (with a line when OpenVINO was asked for)."""
    runtime = settings().runtime
    if runtime == "torch":
        return None
    if device.type != "cpu":
        if runtime == "openvino":
            raise BadArgument(f"CBIR_RUNTIME=openvino runs on the CPU, but the device is {device.type}; "
                              "set CBIR_DEVICE=cpu or CBIR_RUNTIME=auto")  # fmt: skip
        return None
    try:
        import openvino as ov
    except ImportError:
        if runtime == "openvino":
            raise ConfigError("CBIR_RUNTIME=openvino but openvino is not installed: pip install openvino") from None
        return None
    why = _unsupported(precision, ov)
    if why and runtime == "openvino":
        notice(f"CBIR_PRECISION={precision} {why}; using PyTorch")
    return None if why else {"float32": "f32", "bfloat16": "bf16"}[precision]


def _unsupported(precision: str, ov: Any) -> str | None:
    if precision == "int8":
        return "has no OpenVINO mode in cbir (it would need a model quantised by NNCF)"
    if precision == "bfloat16" and "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "needs BF16 in the CPU for OpenVINO and this one has none"
    return None


def accelerate(
    name: str, module: torch.nn.Module, sample: torch.Tensor, device: torch.device, precision: str
) -> OpenVinoForward | None:
    """The model on OpenVINO when CBIR_RUNTIME and CBIR_PRECISION allow it and it converts faithfully, else None.

    `sample` is the embedder's prepared batch of `probe_images()`: it fixes the input shape and is the check.
    """
    hint = wanted(device, precision)
    if hint is None:
        return None
    folder = cache_folder(name, module, sample)
    meta = _read_meta(folder)
    if meta is None:
        meta = convert(name, module, sample, folder)
    elif meta["status"] != "ok":
        notice(meta["reason"] + f" (cached verdict in {folder}; delete it to retry)")
    if meta["status"] != "ok":
        return None
    return OpenVinoForward(compile_ir(folder / "model.xml", hint), tuple(sample.shape[1:]), hint)


def cache_folder(name: str, module: torch.nn.Module, sample: torch.Tensor) -> Path:
    """CBIR_CACHE/openvino/<model>-<key>: the key changes with the weights, the input shape and the versions."""
    import openvino as ov

    key = {
        "name": name,
        "weights": weights_hash(module),
        "input": list(sample.shape[1:]),
        "openvino": ov.get_version(),
        "torch": torch.__version__,
        "format": FORMAT,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[:60]
    return settings().cache / "openvino" / f"{slug}-{digest}"


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (names, dtypes, shapes, bytes): what the conversion bakes in."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("status") == "ok" and not (folder / "model.xml").is_file():
        return None
    return meta


def convert(name: str, module: torch.nn.Module, sample: torch.Tensor, folder: Path) -> dict[str, Any]:
    """Convert, save, read back and check against PyTorch; the verdict (and the IR when it passed) goes to `folder`."""
    import openvino as ov

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
    except OSError as exc:
        raise ConfigError(f"CBIR_CACHE: cannot write converted models to {folder.parent} ({exc.strerror})") from None
    start = time.perf_counter()
    meta: dict[str, Any] = {"name": name, "openvino": ov.get_version()}
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            converted = ov.convert_model(module, example_input=sample, input=[ov.PartialShape([-1, *sample.shape[1:]])])
            ov.save_model(converted, work / "model.xml", compress_to_fp16=False)
    except Exception as exc:  # any failure of a converter (many types) means "run it on PyTorch"
        meta |= {"status": "failed", "reason": f"OpenVINO could not convert {name} ({_summary(exc)}); using PyTorch"}
    else:
        cosine = agreement(compile_ir(work / "model.xml", "f32"), module, sample)
        ok = cosine >= AGREEMENT
        meta |= {"status": "ok" if ok else "refused", "min_cosine": cosine}
        if not ok:
            meta["reason"] = (f"OpenVINO's vectors for {name} differ from PyTorch's (least cosine {cosine:.6f} < "
                              f"{AGREEMENT}); using PyTorch")  # fmt: skip
            for path in work.glob("model.*"):
                path.unlink()
    meta["seconds"] = round(time.perf_counter() - start, 3)
    (work / "meta.json").write_text(json.dumps(meta, indent=1))
    _publish(work, folder)
    if meta["status"] != "ok":
        notice(meta["reason"])
    return _read_meta(folder) or meta


def _publish(work: Path, folder: Path) -> None:
    """Move the finished conversion into place in one rename; a process that got there first wins."""
    if _read_meta(folder) is None:
        shutil.rmtree(folder, ignore_errors=True)  # a damaged or partial entry
    try:
        os.rename(work, folder)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)


def _summary(exc: Exception) -> str:
    """The informative line of a converter's multi-line error (OpenVINO names the unconverted operations)."""
    lines = [line.strip("- ").strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "No conversion rule found" in line]
    return f"{type(exc).__name__}: {(named or lines[-1:] or [''])[0][:200]}"


def agreement(compiled: Any, module: torch.nn.Module, sample: torch.Tensor) -> float:
    """The least cosine, over the sample's rows, between the compiled model's vectors and PyTorch's."""
    with torch.inference_mode():
        reference = module(sample).numpy()
    ours = np.asarray(compiled(np.ascontiguousarray(sample.numpy()))[0], dtype=np.float64).reshape(reference.shape)
    reference = reference.astype(np.float64)
    dots = np.sum(ours * reference, axis=1)
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    return float(np.min(dots / np.maximum(norms, 1e-30)))


def compile_ir(path: Path | Any, hint: str) -> Any:
    """An IR file (or an `openvino.Model`) compiled for the CPU: one stream (latency), torch's thread count, threads
    not pinned to cores."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": hint,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "ENABLE_CPU_PINNING": False,
    }
    return ov.Core().compile_model(path, "CPU", config)
