"""CBIR_RUNTIME: OpenVINO gives PyTorch's vectors, refuses or falls back in one line when it cannot, and converts a
model once (a second load, in this process or another, reads the cache).

Real conversions, real photos and a real database; the tiny random DINOv2's numbers mean nothing beyond agreement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import torch
from PIL import Image
from support import caltech_files, cli_setting_error

import cbir
from cbir import embedders
from cbir.config import settings
from cbir.embedders import runtime
from cbir.embedders.efficientnet_lite import EfficientNetLiteEmbedder
from cbir.embedders.hf import HuggingFaceEmbedder
from cbir.errors import ConfigError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CBIR_CACHE, so the model under test really converts."""
    monkeypatch.setenv("CBIR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CBIR_RUNTIME", "openvino")
    return tmp_path / "cache"


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of openvino.convert_model (each still converts)."""
    calls: list[int] = []
    real = ov.convert_model
    monkeypatch.setattr(ov, "convert_model", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    return calls


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    files = caltech_files("elephant", 3) + caltech_files("dalmatian", 3) + caltech_files("accordion", 2)
    return [Image.open(p).convert("RGB") for p in files]


def metas(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(cache.glob("openvino/*/meta.json"))]


def cbir_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("cbir: ")]


def torch_vectors(embedder, prepared: torch.Tensor) -> np.ndarray:
    compiled, embedder.openvino = embedder.openvino, None
    try:
        return embedder.forward(prepared)
    finally:
        embedder.openvino = compiled


@pytest.mark.parametrize("model", ["tiny", "efficientnet-lite0"])
def test_openvino_gives_pytorchs_vectors(cache: Path, conversions, tiny_model: str, photos, model: str) -> None:
    embedder = EfficientNetLiteEmbedder() if model == "efficientnet-lite0" else HuggingFaceEmbedder(tiny_model)
    assert embedder.openvino is not None and embedder.info()["runtime"] == "openvino" and len(conversions) == 1
    [meta] = metas(cache)  # the check at first conversion, on generated probe images
    assert meta["status"] == "ok" and meta["min_cosine"] >= runtime.AGREEMENT
    prepared = embedder.prepare(photos)
    ours, reference = embedder.forward(prepared), torch_vectors(embedder, prepared)
    assert ours.dtype == np.float32 and np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert np.min(np.sum(ours * reference, axis=1)) >= runtime.AGREEMENT  # real photos agree as well
    assert not np.array_equal(ours, reference)  # two different implementations really ran


def test_a_batch_of_another_shape_runs_on_pytorch(cache: Path, tiny_model: str, photos) -> None:
    embedder = HuggingFaceEmbedder(tiny_model)
    whole = embedder.prepare(photos[:1], crop=False)  # the whole image: not the converted 224x224
    assert whole.shape[2:] != (224, 224) and embedder.openvino(whole) is None
    assert embedder.forward(whole).shape == (1, embedder.dim)


class Unconvertible(HuggingFaceEmbedder):
    """The tiny DINOv2 with its CLS token scaled by its own singular value (its norm): the same direction, through
    an operation OpenVINO has no conversion rule for (aten::linalg_svdvals)."""

    def _pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        cls = super()._pooled(pixels)
        return cls * torch.linalg.svdvals(cls[:, None, :])


def test_a_model_that_fails_to_convert_falls_back_in_one_line_and_ingests(
    cache: Path, tiny_model: str, cbir_home: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    monkeypatch.setitem(embedders.BUILTINS, "unconvertible", lambda: Unconvertible(tiny_model))
    embedders.get_embedder.cache_clear()
    try:
        report = cbir.ingest(caltech_files("elephant", 4), model="unconvertible", progress=False)
        embedder = embedders.get_embedder("unconvertible")
    finally:
        embedders.get_embedder.cache_clear()
    assert report.embedded == 4 and not report.skipped
    assert embedder.openvino is None and embedder.info()["runtime"] == "torch"
    [line] = cbir_lines(capfd.readouterr().err)
    assert "OpenVINO could not convert" in line and "aten::linalg_svdvals" in line and line.endswith("using PyTorch")
    [meta] = metas(cache)
    assert meta["status"] == "failed"
    again = Unconvertible(tiny_model)  # the verdict is cached: no second attempt, the same one line
    assert again.openvino is None and "cached verdict" in cbir_lines(capfd.readouterr().err)[0]


class Noisy(torch.nn.Module):
    """Converts fine, but adds random noise: OpenVINO's random numbers are not PyTorch's."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        flat = pixels.flatten(1)
        return flat + torch.rand_like(flat)


def test_disagreeing_vectors_are_refused_in_one_line(cache: Path, capfd) -> None:
    sample = torch.randn(runtime.PROBES, 3, 8, 8)
    assert runtime.accelerate("noisy", Noisy(), sample, torch.device("cpu"), "float32") is None
    [line] = cbir_lines(capfd.readouterr().err)
    assert "differ from PyTorch's" in line and line.endswith("using PyTorch")
    [meta] = metas(cache)
    assert meta["status"] == "refused" and meta["min_cosine"] < runtime.AGREEMENT
    assert not list(cache.glob("openvino/*/model.xml"))  # nothing of a refused model is kept


LOAD = """
import json, sys, openvino as ov
calls, real = [], ov.convert_model
ov.convert_model = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
from cbir.embedders.hf import HuggingFaceEmbedder
e = HuggingFaceEmbedder(sys.argv[1])
print(json.dumps({"runtime": e.info()["runtime"], "conversions": len(calls)}))
"""


def test_a_converted_model_loads_from_the_cache(cache: Path, conversions, tiny_model: str, photos) -> None:
    first = HuggingFaceEmbedder(tiny_model)
    [entry] = cache.glob("openvino/*")
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    second = HuggingFaceEmbedder(tiny_model)  # a new embedder in the same process
    proc = subprocess.run([sys.executable, "-c", LOAD, tiny_model], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"runtime": "openvino", "conversions": 0}
    assert len(conversions) == 1 and second.openvino is not None
    assert [p.name for p in cache.glob("openvino/*")] == [entry.name]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps  # read, never rewritten
    prepared = first.prepare(photos)
    np.testing.assert_array_equal(first.forward(prepared), second.forward(prepared))


def test_the_key_follows_the_weights(cache: Path, tiny_model: str, tmp_path: Path) -> None:
    from cbir.embedders.random_model import save_random_dinov2

    other = save_random_dinov2(tmp_path / "other", size="tiny", seed=1)  # same architecture, other weights
    HuggingFaceEmbedder(tiny_model), HuggingFaceEmbedder(str(other))
    (tiny_folder,) = [p for p in cache.glob("openvino/*") if p.name.startswith(Path(tiny_model).name)]
    assert len(list(cache.glob("openvino/*"))) == 2
    (tiny_folder / "model.xml").unlink()  # a damaged entry is converted again, not trusted
    assert HuggingFaceEmbedder(tiny_model).openvino is not None and (tiny_folder / "model.xml").is_file()


def test_torch_runtime_and_unsupported_precisions(cache: Path, tiny_model: str, monkeypatch, capfd) -> None:
    monkeypatch.setenv("CBIR_RUNTIME", "torch")
    assert HuggingFaceEmbedder(tiny_model).openvino is None and not cache.exists()
    monkeypatch.setenv("CBIR_RUNTIME", "openvino")
    monkeypatch.setenv("CBIR_PRECISION", "int8")
    embedder = HuggingFaceEmbedder(tiny_model)
    assert embedder.openvino is None and embedder.info()["runtime"] == "torch"
    assert cbir_lines(capfd.readouterr().err) == [
        "cbir: CBIR_PRECISION=int8 has no OpenVINO mode in cbir (it would need a model quantised by NNCF); "
        "using PyTorch"
    ]


def test_bfloat16_uses_openvinos_hint_where_the_cpu_has_it(cache: Path, tiny_model: str, photos, monkeypatch) -> None:
    reference = HuggingFaceEmbedder(tiny_model).embed(photos)
    monkeypatch.setenv("CBIR_PRECISION", "bfloat16")
    embedder = HuggingFaceEmbedder(tiny_model)
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert embedder.openvino is not None and embedder.openvino.precision == "bf16"
    else:  # PyTorch's autocast keeps CBIR_PRECISION's meaning there
        assert embedder.openvino is None
    vectors = embedder.embed(photos)
    assert not np.array_equal(vectors, reference) and np.min(np.sum(vectors * reference, axis=1)) > 0.99


def test_a_bad_runtime_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^CBIR_RUNTIME must be one of auto, torch, openvino, got 'onnx'$"):
        settings({"CBIR_RUNTIME": "onnx"})
    assert settings({}).runtime == "auto" and settings({"CBIR_HOME": "/x"}).cache == Path("/x/cache")
    message = cli_setting_error(tmp_path, "CBIR_RUNTIME", "tensorrt")
    assert message == "cbir: error: CBIR_RUNTIME must be one of auto, torch, openvino, got 'tensorrt'"
