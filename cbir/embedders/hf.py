"""Hugging Face vision backbones (DINOv2 by default) through AutoModel + AutoImageProcessor.

Pooling: DINOv2 and ViT-like models use the CLS token of the last hidden state (after the final layer
norm), which is what DINOv2's authors use for retrieval; models with a trained pooler head for images
(CLIP's vision tower, ResNet's global average pool) use `pooler_output`; anything else averages the last
hidden state over tokens or spatial positions. Rows are L2-normalised, so cosine distance ranks them.

Heatmaps (`spatial_features`, for cbir.analysis.explain): a CNN's last feature map, or a ViT's patch tokens of the
last hidden state (after the CLS, register and distillation tokens) on the patch grid. For a ResNet the pooled vector
is the mean of that map, so the map explains the stored vector's match exactly. For CLS-pooled models (DINOv2) it
does not: the map explains the cosine between the two images' mean patch tokens, an approximation of what the CLS
token attends to, and that cosine differs from the search's; likewise for poolers that normalise after the mean
(ConvNeXt, CLIP's vision tower). Dual encoders (CLIP's projected image features) have no map.

Speed (benchmarks/embed_bench.py, BENCHMARKS.md): on the CPU the pooled forward pass runs on OpenVINO by default
(cbir.embedders.runtime, CBIR_RUNTIME; PyTorch stays the reference and the fallback, and runs heatmaps); on
PyTorch, float32 runs with SDPA attention. The opt-in CBIR_PRECISION=bfloat16 (OpenVINO's bf16 hint, or PyTorch's
autocast; fast on CPUs with AMX/AVX512-BF16 and on GPUs) or int8 (dynamic quantization of Linear layers, PyTorch on
the CPU) trades a little precision for speed; BENCHMARKS.md gives the speed-up and how far each moves the top-10
neighbours from float32's.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Fail fast when the Hub is unreachable instead of waiting on long default timeouts.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# OpenMP threads sleep instead of spinning while they wait (read when torch loads, so before its import).
# Spinning threads steal the cores the model needs whenever anything else runs (decode workers, the
# database, other programs): see "OpenMP wait policy" in BENCHMARKS.md. Set it to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cbir.config import settings  # noqa: E402
from cbir.embedders import runtime  # noqa: E402
from cbir.embedders.base import Embedder, NoSpatialFeatures, l2_normalise  # noqa: E402
from cbir.errors import BadArgument, ModelNotFound  # noqa: E402

CNN_GRID = 32  # total stride assumed for CNN backbones without a patch size (ResNet, ConvNeXt)
CLS_MODEL_TYPES = {"dinov2", "dinov2_with_registers", "vit", "deit", "beit", "vit_msn", "vit_mae", "dinov3_vit"}


def resolve_source(name: str) -> tuple[str, bool]:
    """(canonical name, is local directory). Paths that look local must exist as model directories."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if name.startswith((".", "/", "~")) or path.exists():
        raise ModelNotFound(
            f"model {name!r} is not a directory in Hugging Face format (config.json + weights); "
            "set --model or CBIR_MODEL to such a directory or to a Hub id"
        )
    return name, False


def pick_device(device: str = "auto") -> torch.device:
    """CBIR_DEVICE: 'auto' takes CUDA when there is one; asking for CUDA without one is a clear error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise BadArgument("CBIR_DEVICE=cuda but no CUDA device is available to torch")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Linear layers with int8 weights and per-batch int8 activations (CPU; VNNI/AMX make it fast)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice points to torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers: False at once under HF_HUB_OFFLINE, else a quick TCP check, so an offline
    machine fails in seconds rather than after long retries."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    host = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # name lookup can hang past any socket timeout
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _load(source: str, local: bool) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    def load(local_only: bool) -> tuple[Any, Any]:
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
        model = AutoModel.from_pretrained(source, local_files_only=local_only)
        return processor, model

    try:
        return load(local_only=True)  # a local directory or the Hub cache: no network at all
    except (OSError, ValueError) as exc:
        if local:
            raise _missing(source, "that directory has no loadable model and image processor", exc) from None
        if not hub_reachable():
            raise _missing(source, "not in the local Hugging Face cache and the Hub is unreachable", exc) from None
    try:
        return load(local_only=False)
    except (OSError, ValueError) as exc:
        raise _missing(source, "the Hub download failed", exc) from None


def _input_side(processor: Any) -> int:
    """The side the processor feeds the model: its crop if it crops, else its resize target (224 if unknown)."""
    sizes = [getattr(processor, "crop_size", None)] if getattr(processor, "do_center_crop", False) else []
    for size in [*sizes, getattr(processor, "size", None)]:
        for key in ("height", "shortest_edge"):
            value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
            if value:
                return int(value)
    return 224


def _missing(source: str, why: str, exc: Exception) -> ModelNotFound:
    return ModelNotFound(
        f"cannot load model {source!r}: {why} ({type(exc).__name__}). Set CBIR_MODEL (or --model) to a "
        "local model directory in Hugging Face format (config.json, weights, preprocessor_config.json)."
    )


class HuggingFaceEmbedder(Embedder):
    kind = "vector"

    def __init__(self, name: str) -> None:
        self.name, local = resolve_source(name)
        self.processor, model = _load(self.name, local)
        s = settings()
        self.device = pick_device(s.device)
        self.precision = s.precision
        self.model = model.to(self.device).eval()
        if self.precision == "int8":
            if self.device.type != "cpu":
                raise BadArgument("CBIR_PRECISION=int8 runs on the CPU only; use bfloat16 on a GPU")
            self.model = quantize_int8(self.model)
        if self.precision == "bfloat16":  # matmuls in bf16, softmax and norms kept in float32 by autocast
            self.forward = torch.autocast(self.device.type, dtype=torch.bfloat16)(self.forward)  # type: ignore[method-assign]
        self.model_type = getattr(model.config, "model_type", "")
        vision = getattr(self.model, "vision_model", None)
        if vision is not None and hasattr(self.model, "get_image_features"):
            self.pooling = "image_features"  # CLIP-like dual encoders: projected image embedding
        elif self.model_type in CLS_MODEL_TYPES:
            self.pooling = "cls"
        else:
            self.pooling = "pooler"
        self.openvino: runtime.OpenVinoForward | None = None
        self.dim = int(self.embed([Image.new("RGB", (32, 32))]).shape[1])
        pooled, probes = runtime.Pooled(self.model, self._pooled), self.prepare(runtime.probe_images())
        self.openvino = runtime.accelerate(self.name, pooled, probes, self.device, self.precision)

    def prepare(self, images: list[Image.Image], crop: bool = True) -> torch.Tensor:
        """The processor's preprocessing. `crop=False` keeps the whole image for a heatmap (aspect kept, short side
        the processor's input side, sides rounded to the patch grid); the images must then share one shape."""
        if crop:
            return self.processor(images=images, return_tensors="pt")["pixel_values"]
        return torch.cat([self._whole(image) for image in images])

    def _whole(self, image: Image.Image) -> torch.Tensor:
        grid, side = self._grid(), _input_side(self.processor)
        scale = side / min(image.size)
        size = tuple(max(grid, round(s * scale / grid) * grid) for s in image.size)
        resample = getattr(self.processor, "resample", None)
        resample = Image.Resampling.BICUBIC if resample is None else Image.Resampling(int(resample))
        resized = image.convert("RGB").resize(size, resample)  # type: ignore[arg-type]
        kwargs = {"do_resize": False, "do_center_crop": False, "return_tensors": "pt"}
        return self.processor(images=[resized], **kwargs)["pixel_values"]

    def _grid(self) -> int:
        """Pixels per patch (ViT-like) or per feature-map cell (CNN)."""
        patch = getattr(self.model.config, "patch_size", None)
        if patch is None:
            return CNN_GRID
        return int(patch[0] if isinstance(patch, list | tuple) else patch)

    @property
    def has_spatial_features(self) -> bool:
        return self.pooling != "image_features"

    @torch.inference_mode()
    def spatial_features(self, prepared: torch.Tensor) -> np.ndarray:
        """(n, h, w, c) float32: the CNN feature map, or the patch tokens on the (height/patch, width/patch) grid."""
        if not self.has_spatial_features:
            raise NoSpatialFeatures(f"{self.name} pools a projected image embedding, which no heatmap explains")
        pixels = prepared.to(self.device)
        extra = {"interpolate_pos_encoding": True} if self._interpolates() else {}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            hidden = self.model(pixel_values=pixels, **extra).last_hidden_state.float()
        if hidden.dim() == 4:  # (n, c, h, w)
            return np.ascontiguousarray(hidden.permute(0, 2, 3, 1).cpu().numpy())
        grid = self._grid()
        h, w = pixels.shape[2] // grid, pixels.shape[3] // grid
        if hidden.shape[1] < h * w:
            raise NoSpatialFeatures(f"{self.name} returns {hidden.shape[1]} tokens, fewer than its {h}x{w} patches")
        tokens = hidden[:, hidden.shape[1] - h * w :]  # after CLS, register and distillation tokens
        return np.ascontiguousarray(tokens.reshape(len(hidden), h, w, hidden.shape[2]).cpu().numpy())

    def _interpolates(self) -> bool:
        """ViTs with fixed position embeddings need this flag for an input of another size (DINOv2 always does)."""
        return "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters

    @torch.inference_mode()
    def forward(self, prepared: torch.Tensor) -> np.ndarray:
        """OpenVINO when cbir.embedders.runtime chose it (and the batch has its shape), else PyTorch."""
        vectors = self.openvino(prepared) if self.openvino else None
        if vectors is None:
            vectors = self._pooled(prepared.to(self.device)).float().cpu().numpy()
        return l2_normalise(vectors)

    def _pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """The un-normalised vector: PyTorch's forward, and the module OpenVINO converts."""
        if self.pooling == "image_features":
            out = self.model.get_image_features(pixel_values=pixels)
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        return self._pool(self.model(pixel_values=pixels))

    def _pool(self, out: Any) -> torch.Tensor:
        hidden = getattr(out, "last_hidden_state", None)
        if self.pooling == "cls" and hidden is not None and hidden.dim() == 3:
            return hidden[:, 0]
        pooler = getattr(out, "pooler_output", None)
        if pooler is not None:
            return pooler.flatten(1)
        if hidden.dim() == 4:  # CNN feature map (n, c, h, w)
            return hidden.mean(dim=(2, 3))
        return hidden.mean(dim=1)

    def info(self) -> dict[str, Any]:
        return {
            "source": "huggingface",
            "model_type": self.model_type,
            "pooling": self.pooling,
            "precision": self.precision,
            "runtime": "openvino" if self.openvino else "torch",
        }
