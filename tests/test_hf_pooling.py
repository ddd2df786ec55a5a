"""Any Hugging Face vision backbone loads with its architecture's pooling (tiny random models, offline).

Random weights: these tests check shapes and which output is used, never retrieval quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import caltech_files

from cbir.embedders.hf import HuggingFaceEmbedder


def _clip(path: Path) -> int:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision |= {"image_size": 32, "patch_size": 8}
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=24)).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return 24  # the projected image embedding


def _clip_vision_tower(path: Path) -> int:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    CLIPVisionModel(CLIPVisionConfig(**config.to_dict() | {"image_size": 32, "patch_size": 8})).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return 32  # the tower alone: its pooled (layer-normed CLS) output, no projection


def _resnet(path: Path) -> int:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    config = ResNetConfig(embedding_size=8, hidden_sizes=[16, 40], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(path)
    ConvNextImageProcessor(size={"shortest_edge": 64}).save_pretrained(path)
    return 40  # global average pool of the last stage


def _vit(path: Path) -> int:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(hidden_size=36, num_hidden_layers=1, num_attention_heads=2, intermediate_size=72)
    ViTModel(ViTConfig(**config.to_dict() | {"image_size": 32, "patch_size": 8})).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return 36  # CLS token of the last hidden state


@pytest.mark.parametrize(
    ("build", "pooling"),
    [(_clip, "image_features"), (_clip_vision_tower, "pooler"), (_resnet, "pooler"), (_vit, "cls")],
)
def test_pooling_per_architecture(tmp_path: Path, build, pooling: str) -> None:
    dim = build(tmp_path)
    embedder = HuggingFaceEmbedder(str(tmp_path))
    assert embedder.pooling == pooling and embedder.dim == dim
    images = [Image.open(p).convert("RGB") for p in caltech_files("elephant", 2)]
    vectors = embedder.embed(images)
    assert vectors.shape == (2, dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    with torch.inference_mode():  # the same numbers as the architecture's own output, normalised
        pixels = embedder.prepare(images)
        if pooling == "image_features":
            out = embedder.model.get_image_features(pixel_values=pixels)
            expected = out if isinstance(out, torch.Tensor) else out.pooler_output
        elif pooling == "pooler":
            expected = embedder.model(pixel_values=pixels).pooler_output.flatten(1)
        else:
            expected = embedder.model(pixel_values=pixels).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(expected.float(), dim=1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
