"""Mirrored and rotated variants of a query, so copy finding does not depend on how a copy was turned.

A copy may be the original mirrored and/or turned by quarter turns. Hashes (phash) change completely under
those edits, so a query is also searched as each variant that undoes one: the eight orientations of the
square (4 rotations, each also mirrored). Each variant is named by the edit it undoes, as done to the
original ("mirrored", "rotated 90": angles counterclockwise, as Pillow's `Image.rotate`). Results of all
variants are merged by each stored image's best distance, and the variant that gave it is reported.

Vector models are searched with the 4 rotations only: networks trained with random horizontal flips, as
ImageNet CNNs and DINOv2 are, already embed a mirror image next to its original (efficientnet-lite0: median
cosine distance 0.03 for benchmarks/duplicates.py's mirror copies, where other photos lie 0.3 to 0.7 away).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image

# Pillow's transposes that turn a picture counterclockwise by 1, 2, 3 quarter turns
_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class Variant:
    """The edit `copy = turn(mirror?(original))` a query variant undoes."""

    mirrored: bool
    quarter_turns: int  # counterclockwise

    @property
    def name(self) -> str:
        parts = (["mirrored"] if self.mirrored else []) + (
            [f"rotated {90 * self.quarter_turns}"] if self.quarter_turns else []
        )
        return ", ".join(parts) or "as is"

    def undo(self, copy: Image.Image) -> Image.Image:
        """The copy turned back and un-mirrored: the original's orientation if the copy had this edit."""
        img = copy.transpose(_TURNS[4 - self.quarter_turns]) if self.quarter_turns else copy
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.mirrored else img

    def apply(self, original: Image.Image) -> Image.Image:
        """The edit itself (the tests check that `undo` reverses it)."""
        img = original.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.mirrored else original
        return img.transpose(_TURNS[self.quarter_turns]) if self.quarter_turns else img


AS_IS = Variant(False, 0)
ROTATIONS = tuple(Variant(False, q) for q in range(4))
ALL = ROTATIONS + tuple(Variant(True, q) for q in range(4))


def for_kind(kind: str) -> tuple[Variant, ...]:
    """The variants a model is searched with: all 8 for hashes ('bit'), the 4 rotations for vectors."""
    return ALL if kind == "bit" else ROTATIONS


def images(picture: Image.Image, variants: Sequence[Variant]) -> list[Image.Image]:
    return [v.undo(picture) for v in variants]


@dataclass
class Candidate:
    """A stored image near some variant of the query under one model."""

    id: int
    distance: float
    variant: Variant
    model: str


def merge(model: str, found: Iterable[tuple[Variant, Iterable[tuple[int, float]]]], k: int) -> list[Candidate]:
    """Each stored image once, at its best distance over the variants (ties: the earlier variant), nearest k."""
    best: dict[int, Candidate] = {}
    for variant, hits in found:
        for image_id, distance in hits:
            if image_id not in best or distance < best[image_id].distance:
                best[image_id] = Candidate(image_id, float(distance), variant, model)
    return sorted(best.values(), key=lambda c: (c.distance, c.id))[:k]
