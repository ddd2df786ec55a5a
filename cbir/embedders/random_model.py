"""Save a randomly initialised DINOv2 of the real architecture, for tests and speed benchmarks.

No genuine weights can be downloaded in offline environments; a random model exercises exactly the
loading and embedding path users take, and costs the same to run. Its retrieval quality means nothing.

    python -m cbir.embedders.random_model DIR [--size tiny|small|base]
"""

from __future__ import annotations

import argparse
from pathlib import Path

SIZES = {
    # hidden, layers, heads (small/base match facebook/dinov2-small and -base)
    "tiny": (32, 2, 2),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
}


def save_random_dinov2(path: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    hidden, layers, heads = SIZES[size]
    torch.manual_seed(seed)
    config = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        image_size=518,
        patch_size=14,
    )
    model = Dinov2Model(config).eval()
    processor = BitImageProcessor(  # the preprocessing facebook/dinov2-* ships with
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        do_center_crop=True,
        do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
    )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    args = parser.parse_args()
    print(save_random_dinov2(args.path, args.size))


if __name__ == "__main__":
    main()
