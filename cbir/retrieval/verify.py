"""Geometric verification of a candidate copy: local keypoints matched between two pictures and fitted by RANSAC.

A hash or an embedding says two pictures look alike; a copy also has the same details in the same places.
Each picture gets SIFT keypoints (OpenCV, `opencv-python-headless`) at one working size (WORK_SIDE pixels),
descriptors are matched with Lowe's ratio test (one match per stored keypoint), and a similarity transform
(rotation, uniform scale, shift) from the copy to the original is fitted with RANSAC. The matches that agree
with it (inliers) are the evidence: a copy needs enough of them (different photos get only chance agreements)
and a high share of all its matches among them (two shots of one scene agree on the background but not on
the subject that moved). A similarity rather than a full homography: crops, borders, rescales and rotations
are all similarities, and the stricter model leaves chance matches less room. Mirrored copies
are matched through the query's mirror image (SIFT descriptors are not mirror-invariant), so the fitted map
may include a reflection; the map then names the edit ("mirrored, rotated 90, cropped to 70%").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

# Pictures are shrunk or enlarged to this longest side for keypoints: a resized copy and its original then
# show details at the same scales, so fewer of their matches are wrong. A one-off comparison on the benchmark's
# copies of 22 photos (320, 384, 448, 512; docs/duplicates.md) found 384 separating copies best from two shots
# of one scene; it is a working choice, not a tuned optimum.
WORK_SIDE = 384
SIFT_FEATURES = 500  # strongest keypoints kept per picture
RATIO = 0.8  # Lowe's ratio test: best match clearly better than the second best
RANSAC_SHARE = 2 / 512  # reprojection tolerance, as a share of the original's longest side (1.5 working pixels)
SCALE_RANGE = (1 / 8, 8)  # whole-picture scale between copy and original that can still be a copy
# What a copy needs, chosen by benchmarks/duplicates.py on its calibration split (docs/duplicates.md, seed 0):
# this many inliers (unrelated photos got at most 3; every calibration copy at least 20), and this share of the
# keypoint matches agreeing with the map (every calibration copy kept 0.70 or more, most ~0.95; two shots of
# one scene where the subject moved ~0.3-0.6).
MIN_INLIERS = 8
MIN_AGREEMENT = 0.7
MENTION = 0.93  # crops and borders that keep more than this share of a side go unmentioned
SCALE_MENTION = 1.1


@dataclass
class Features:
    """SIFT keypoints of one picture (positions in its own pixels) and their descriptors."""

    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 128) float32
    size: tuple[int, int]  # the picture's width, height
    mirrored: bool = False  # computed on the mirror image; points are in the mirror image's pixels


def features(picture: Image.Image, mirrored: bool = False) -> Features:
    grey = picture.convert("L")
    if mirrored:
        grey = grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    factor = WORK_SIDE / max(grey.size)
    size = (max(1, round(grey.width * factor)), max(1, round(grey.height * factor)))
    grey = grey.resize(size, Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC)
    # a detector per call: OpenCV's detectors are not safe to share between the dashboard's threads
    keypoints, descriptors = cv2.SIFT_create(nfeatures=SIFT_FEATURES).detectAndCompute(np.asarray(grey), None)
    if descriptors is None:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), picture.size, mirrored)
    points = (np.float32([k.pt for k in keypoints]) + 0.5) / factor - 0.5  # pixel centres of the full picture
    return Features(points, descriptors, picture.size, mirrored)


def query_features(picture: Image.Image) -> tuple[Features, Features]:
    """A query's keypoints as it is and mirrored, so a mirrored copy is verified too."""
    return features(picture), features(picture, mirrored=True)


@dataclass
class Match:
    """How a copy maps onto an original: the fitted map and the keypoints that agree with it."""

    inliers: int
    matches: int  # keypoint matches that passed the ratio test; `inliers` of them agree with the map
    matrix: np.ndarray  # 3x3: copy pixels -> original pixels (a reflection when the copy is mirrored)
    copy_points: np.ndarray  # (inliers, 2) in the copy's pixels
    original_points: np.ndarray  # (inliers, 2) in the original's pixels
    copy_size: tuple[int, int]
    original_size: tuple[int, int]

    @property
    def agreement(self) -> float:
        """Share of the keypoint matches that agree with the map: near 1 for a copy, lower for a re-shot scene."""
        return self.inliers / self.matches if self.matches else 0.0

    def verified(self, min_inliers: int = MIN_INLIERS, min_agreement: float = MIN_AGREEMENT) -> bool:
        return self.inliers >= min_inliers and self.agreement >= min_agreement

    @property
    def mirrored(self) -> bool:
        return bool(np.linalg.det(self.matrix[:2, :2]) < 0)

    @property
    def _edit(self) -> np.ndarray:
        """The original -> copy map, un-mirrored: a rotation times a scale."""
        forward = np.linalg.inv(self.matrix)[:2, :2]
        return forward @ np.diag([-1.0, 1.0]) if self.mirrored else forward

    @property
    def rotation(self) -> float:
        """Degrees counterclockwise (as Pillow's rotate), in (-180, 180]; image y points down, hence the sign."""
        edit = self._edit
        return -math.degrees(math.atan2(edit[1, 0], edit[0, 0]))

    @property
    def scale(self) -> float:
        """Copy pixels per original pixel."""
        return math.sqrt(abs(np.linalg.det(self._edit)))

    def original_region(self) -> np.ndarray:
        """The part of the original the copy shows, as a polygon in the original's pixels."""
        copy_frame = cv2.convexHull(_apply(self.matrix, _frame(self.copy_size))).reshape(-1, 2)
        _, region = cv2.intersectConvexConvex(copy_frame, _frame(self.original_size))
        return np.zeros((0, 2), np.float32) if region is None else region.reshape(-1, 2)

    def copy_region(self) -> np.ndarray:
        """The same region in the copy's pixels."""
        region = self.original_region()
        return _apply(np.linalg.inv(self.matrix), region) if len(region) else region

    def shown(self) -> float:
        """Share of the original's sides the copy shows (1: all of it; 0.7: a 70% crop)."""
        return _side_share(self.original_region(), self.original_size)

    def fill(self) -> float:
        """Share of the copy's sides the original fills (below 1: borders or a larger canvas)."""
        return _side_share(self.copy_region(), self.copy_size)

    def describe(self) -> str:
        """The edit in words: 'mirrored, rotated 90, cropped to 80%'."""
        parts = ["mirrored"] if self.mirrored else []
        angle = self.rotation
        turns = round(angle / 90) % 4
        if abs(angle - 90 * round(angle / 90)) <= 2 and turns:
            parts.append(f"rotated {90 * turns}")
        elif abs(angle - 90 * round(angle / 90)) > 2:
            parts.append(f"rotated {round(angle)}")
        if (shown := self.shown()) < MENTION:
            parts.append(f"cropped to {shown:.0%}")
        if (fill := self.fill()) < MENTION:
            parts.append(f"with a border (the original fills {fill:.0%})")
        if max(self.scale, 1 / self.scale) >= SCALE_MENTION:
            parts.append(f"scaled {self.scale:.2f}x")
        return ", ".join(parts) or "same framing"

    def as_dict(self) -> dict[str, Any]:
        return {
            "inliers": self.inliers,
            "agreement": round(self.agreement, 3),
            "transform": self.describe(),
            "mirrored": self.mirrored,
            "rotation": round(self.rotation, 1) + 0.0,  # no "-0.0"
            "scale": round(self.scale, 3),
            "shown": round(self.shown(), 3),
            "fill": round(self.fill(), 3),
            "matrix": np.round(self.matrix, 4).tolist(),
        }


def _frame(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.float32([[0, 0], [w, 0], [w, h], [0, h]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ matrix[:2, :2].T + matrix[:2, 2]).astype(np.float32)


def _side_share(region: np.ndarray, size: tuple[int, int]) -> float:
    area = cv2.contourArea(region.astype(np.float32)) if len(region) >= 3 else 0.0
    return min(1.0, math.sqrt(area / (size[0] * size[1])))


def match(copy: Features, original: Features) -> Match | None:
    """The similarity map from a copy's keypoints to an original's, fitted by RANSAC; None when nothing fits."""
    if len(copy.descriptors) < 2 or len(original.descriptors) < 2:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(copy.descriptors, original.descriptors, k=2)
    best: dict[int, cv2.DMatch] = {}  # one match per original keypoint: repeated texture cannot pile up
    for pair in pairs:
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            m = pair[0]
            if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
                best[m.trainIdx] = m
    if len(best) < 3:
        return None
    src = copy.points[[m.queryIdx for m in best.values()]]
    dst = original.points[[m.trainIdx for m in best.values()]]
    cv2.setRNGSeed(0)  # the same pictures always give the same inlier count
    fitted, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_SHARE * max(original.size), maxIters=2000
    )
    if fitted is None:
        return None
    matrix = np.vstack([fitted, [0.0, 0.0, 1.0]])
    if copy.mirrored:  # the fit ran on the mirror image: compose the reflection back in
        right = copy.size[0] - 1  # the mirror maps pixel centre x to right - x
        matrix = matrix @ np.array([[-1.0, 0.0, right], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        src = (src * [-1, 1] + [right, 0]).astype(np.float32)
    whole = math.sqrt(abs(np.linalg.det(matrix[:2, :2]))) * max(copy.size) / max(original.size)
    if not SCALE_RANGE[0] <= whole <= SCALE_RANGE[1]:
        return None
    keep = mask.ravel().astype(bool)
    return Match(int(keep.sum()), len(best), matrix, src[keep], dst[keep], copy.size, original.size)


def best_match(query: tuple[Features, Features], original: Features) -> Match | None:
    """The better of the query's plain and mirrored matches onto one original."""
    found = [m for m in (match(f, original) for f in query) if m is not None]
    return max(found, key=lambda m: m.inliers, default=None)
