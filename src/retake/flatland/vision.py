"""The judge's eyes: colour segmentation of Flatland pixels and shape recognition of colour blobs.

Colours are classified in CIELAB: a pixel belongs to an object colour when it is saturated (chroma) and
close to that palette colour; muted backgrounds never are. Shapes are recognised by analysis by synthesis:
each candidate outline is drawn at the blob's area, centroid and the best of a sweep of rotations, and the
shape whose drawing overlaps the blob best (IoU) wins. Background patterns are told apart by a few
statistics of the background's luma (spread, planarity, orientation coherence, edge sharpness).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from retake.flatland import shapes
from retake.flatland.palette import OBJECT_COLOURS, SHAPES

COLOUR_NAMES: tuple[str, ...] = tuple(OBJECT_COLOURS)
_MIN_CHROMA = 25.0  # CIELAB chroma below this is background (muted palette <= ~20; cyan, the palest, ~40)
_MAX_DISTANCE = 32.0  # farther than this (weighted Lab) from every object colour: not an object pixel
_L_WEIGHT = 0.5  # lightness matters less than hue: blur and shading move it most
_ROTATION_STEPS = 8  # rotations tried per symmetry period of a shape (then refined for the best two)
_LUT_BITS = 6  # colour_labels classifies 6-bit RGB cells


def to_lab(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> float32 CIELAB (L 0..100, a/b about -128..127)."""
    rgb = np.asarray(frames, np.float32) / 255.0
    flat = rgb.reshape(-1, rgb.shape[-2], 3)  # cv2 wants (rows, cols, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(rgb.shape)


_PALETTE_LAB = to_lab(np.array([list(OBJECT_COLOURS.values())], np.uint8))[0]  # (8, 3)


def colour_labels(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., H, W) int8: the index into COLOUR_NAMES of each pixel, or -1 (no object).

    A lookup table over 6-bit RGB (steps of 4 grey levels, far below every threshold) makes this a gather.
    """
    rgb = np.asarray(frames, np.uint8) >> (8 - _LUT_BITS)
    index = (
        (rgb[..., 0].astype(np.int32) << (2 * _LUT_BITS))
        | (rgb[..., 1].astype(np.int32) << _LUT_BITS)
        | rgb[..., 2]
    )
    return _label_table()[index]


@lru_cache(maxsize=1)
def _label_table() -> np.ndarray:
    """(64**3,) int8 colour label of every 6-bit RGB cell, classified at the cell's centre."""
    levels = (np.arange(1 << _LUT_BITS) << (8 - _LUT_BITS)) + (1 << (7 - _LUT_BITS))
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1).reshape(1, -1, 3).astype(np.uint8)
    return _classify(to_lab(rgb)[0])


def _classify(lab: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB -> (N,) int8 nearest object colour, or -1 when too pale or too far from all of them."""
    weights = np.array([_L_WEIGHT, 1.0, 1.0], np.float32)
    diff = (lab[:, None, :] - _PALETTE_LAB) * weights  # (N, 8, 3)
    distance = np.sqrt((diff * diff).sum(-1))  # (N, 8)
    nearest = distance.argmin(-1)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    ok = (chroma >= _MIN_CHROMA) & (distance[np.arange(len(lab)), nearest] <= _MAX_DISTANCE)
    return np.where(ok, nearest, -1).astype(np.int8)


def colour_index(name: str) -> int:
    return COLOUR_NAMES.index(name)


def core(mask: np.ndarray) -> np.ndarray:
    """(F, H, W) bool eroded by a 3x3 square: drops the one-pixel fringes that blur and chroma bleeding
    leave along edges, keeps the body of every object."""
    kernel = np.ones((3, 3), np.uint8)
    return np.stack([cv2.erode(m.astype(np.uint8), kernel) for m in mask]).astype(bool)


def erode_cross(mask: np.ndarray) -> np.ndarray:
    """(F, H, W) bool eroded by a 3x3 cross: keeps what is at least 2 px thick in both directions."""
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return np.stack([cv2.erode(m.astype(np.uint8), kernel) for m in mask]).astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(F, H, W) bool dilated by a disc of `radius` pixels."""
    if radius <= 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in mask]).astype(bool)


@dataclass(frozen=True)
class Blob:
    """One object seen in one frame: its hard colour mask and its estimated soft coverage."""

    mask: np.ndarray  # (H, W) bool, the connected component of the object's colour
    alpha: np.ndarray  # (H, W) float32 coverage in 0..1, unmixed from the local background colour
    area: float  # sum of alpha, pixels
    cx: float  # alpha-weighted centroid, continuous pixel coordinates
    cy: float
    touches_border: bool


def find_blob(frame: np.ndarray, labels: np.ndarray, index: int) -> Blob | None:
    """The largest blob of colour `index` in one frame ((H, W, 3) uint8 and its (H, W) labels), or None.

    Coverage is unmixed per pixel as alpha = <x - b, c - b> / |c - b|^2, with b the median colour of a thin
    ring around the blob (its local background) and c the median colour of its interior (so a small global
    colour shift of an editor does not matter). Edges blurred by an editor or by H.264 chroma subsampling
    then still add up to the right area.
    """
    count, comps, stats, _ = cv2.connectedComponentsWithStats(
        (labels == index).astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = comps == best
    x, y, w, h, _ = stats[best]
    height, width = mask.shape
    rgb = frame.astype(np.float32)
    near = _grow(mask, 2)
    ring = _grow(mask, 4) & ~_grow(mask, 1)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    b = np.median(rgb[ring], axis=0) if ring.any() else rgb[~mask].mean(axis=0)
    c = np.median(rgb[inner if inner.sum() >= 3 else mask], axis=0)
    direction = c - b
    alpha = np.clip((rgb - b) @ direction / max(float(direction @ direction), 1.0), 0.0, 1.0) * near
    area = float(alpha.sum())
    ys, xs = np.mgrid[0:height, 0:width]
    cx = float((alpha * (xs + 0.5)).sum() / area)
    cy = float((alpha * (ys + 0.5)).sum() / area)
    border = x == 0 or y == 0 or x + w >= width or y + h >= height
    return Blob(mask, alpha.astype(np.float32), area, cx, cy, bool(border))


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def classify_shape(blob: Blob) -> tuple[str, dict[str, float]]:
    """(best shape, soft IoU per shape) for a blob, by drawing every shape over it (see the module doc)."""
    scores = {shape: _best_iou(blob, shape, _angles(shape)) for shape in SHAPES}
    for shape, (score, angle) in sorted(scores.items(), key=lambda kv: -kv[1][0])[:2]:
        step = _step(shape)
        if step:  # refine the orientation of the two best candidates to a third of a step
            scores[shape] = _best_iou(blob, shape, [angle - step / 3, angle + step / 3], (score, angle))
    return max(scores, key=lambda s: scores[s][0]), {s: v[0] for s, v in scores.items()}


def _step(shape: str) -> float:
    symmetry = shapes.SYMMETRY[shape]
    return 0.0 if symmetry == 0 else 2 * np.pi / symmetry / _ROTATION_STEPS


def _angles(shape: str) -> list[float]:
    return [i * _step(shape) for i in range(_ROTATION_STEPS if _step(shape) else 1)]


def _best_iou(
    blob: Blob, shape: str, angles: list[float], best: tuple[float, float] = (0.0, 0.0)
) -> tuple[float, float]:
    """(best soft IoU, its angle) of the shape drawn at the blob's area and centroid, over `angles`."""
    radius = np.sqrt(blob.area / shapes.area(shape))  # size radius whose drawing has the blob's area
    reach = int(np.ceil(1.25 * radius)) + 2
    height, width = blob.alpha.shape
    x0, y0 = max(int(blob.cx) - reach, 0), max(int(blob.cy) - reach, 0)
    x1, y1 = min(int(blob.cx) + reach + 1, width), min(int(blob.cy) + reach + 1, height)
    crop = blob.alpha[y0:y1, x0:x1]
    for angle in angles:
        drawn = shapes.rasterize(shape, angle, radius, (blob.cx - x0, blob.cy - y0), crop.shape)
        union = float(np.maximum(drawn, crop).sum())
        score = float(np.minimum(drawn, crop).sum()) / union if union > 0 else 0.0
        if score > best[0]:
            best = (score, float(angle))
    return best


# ---- background patterns -------------------------------------------------------------------------------

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class PatternFeatures:
    """What tells the five background patterns apart, measured on the luma of the visible background."""

    spread: float  # std of luma: ~0 for solid
    planar: float  # R^2 of a plane fit: ~1 for a gradient
    coherence: float  # how much local gradients share one orientation: ~1 for stripes
    sharpness: float  # mean gradient magnitude of the plane-fit residual: high for checkers, low for noise


def pattern_features(frame: np.ndarray, background: np.ndarray) -> PatternFeatures:
    """Features of one (H, W, 3) uint8 frame's background, given its (H, W) bool background mask."""
    luma = cv2.GaussianBlur(frame.astype(np.float32) @ _LUMA, (0, 0), 1.0)  # (H, W); the blur tames noise
    ys, xs = np.nonzero(background)
    values = luma[background]
    design = np.stack([np.ones_like(xs), xs, ys], axis=1).astype(np.float32)  # (N, 3)
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coef
    planar = 1.0 - float(residual.var()) / max(float(values.var()), 1e-6)
    flat = np.zeros_like(luma)
    flat[background] = residual
    gx, gy = cv2.Sobel(flat, cv2.CV_32F, 1, 0), cv2.Sobel(flat, cv2.CV_32F, 0, 1)
    inside = cv2.erode(background.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    gx, gy = gx[inside], gy[inside]
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())  # structure tensor
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / max(jxx + jyy, 1e-6)
    sharpness = float(np.sqrt(gx * gx + gy * gy).mean()) if gx.size else 0.0
    return PatternFeatures(float(values.std()), planar, float(coherence), sharpness)


def classify_pattern(features: PatternFeatures) -> str:
    """The background pattern these features show (thresholds sit far from every pattern's range, measured
    on H.264-decoded and on blurred, noisy renders)."""
    if features.spread < 4.0:
        return "solid"
    if features.planar > 0.85:
        return "gradient"
    if features.coherence > 0.7:
        return "stripes"
    return "checker" if features.sharpness > 30.0 else "noise"
