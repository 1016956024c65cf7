"""Shape geometry: outlines of the six shapes in size-radius units (shared by the renderer and the judge).

Every shape reaches at most 1.2 size-radii from its centre (motion.EXTENT) and covers a similar area
(1.9-3.1 square units), so "small/medium/large" mean about the same for all shapes.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from retake.flatland.palette import SHAPES, check_name

# Rotational symmetry of each shape (0: none to search, the shape looks the same at every angle).
SYMMETRY: dict[str, int] = {"circle": 0, "square": 4, "triangle": 3, "star": 5, "cross": 4, "ring": 0}

_RING_INNER = 0.5
_RING_OUTER = 1.1


def _regular(n: int, radius: float, phase: float) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def outline(shape: str, rotation: float = 0.0, segments: int = 48) -> tuple[np.ndarray, np.ndarray | None]:
    """(outer polygon (N,2), hole polygon (M,2) or None) in size-radius units, y pointing down.

    `segments` is the number of vertices used for round outlines.
    """
    outer, hole = _unit_outline(check_name(shape, SHAPES, "shape"), segments)
    return _rotate(outer, rotation), None if hole is None else _rotate(hole, rotation)


@lru_cache(maxsize=256)
def _unit_outline(shape: str, segments: int) -> tuple[np.ndarray, np.ndarray | None]:
    hole = None
    up = -np.pi / 2  # points of triangles and stars face up at rotation 0 (y grows downwards)
    if shape == "circle":
        outer = _regular(segments, 1.0, 0.0)
    elif shape == "ring":
        outer = _regular(segments, _RING_OUTER, 0.0)
        hole = _regular(segments, _RING_INNER, 0.0)
    elif shape == "square":
        outer = _regular(4, 1.2, np.pi / 4)
    elif shape == "triangle":
        outer = _regular(3, 1.2, up)
    elif shape == "star":
        radii = np.where(np.arange(10) % 2 == 0, 1.2, 0.55)
        angles = up + np.pi * np.arange(10) / 5
        outer = radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:  # cross: a plus sign with arms 0.38 half-wide reaching 1.1
        a, w = 1.1, 0.38
        outer = np.array(
            [
                [w, -a],
                [w, -w],
                [a, -w],
                [a, w],
                [w, w],
                [w, a],
                [-w, a],
                [-w, w],
                [-a, w],
                [-a, -w],
                [-w, -w],
                [-w, -a],
            ]
        )
    return outer.astype(np.float64), hole


def rasterize(
    shape: str,
    rotation: float,
    radius: float,
    centre: tuple[float, float],
    size: tuple[int, int],
    supersample: int = 4,
) -> np.ndarray:
    """(h, w) float32 anti-aliased coverage in 0..1 of a shape drawn on an (h, w) canvas.

    `centre` is in continuous pixel coordinates (pixel i spans [i, i+1)) and `radius` in pixels. The shape
    is filled at `supersample` x resolution with sub-pixel vertex precision and area-averaged back down.
    """
    ss, shift = supersample, 8
    segments = int(np.clip(2 * np.pi * radius * ss / 3, 24, 256))  # vertices ~3 canvas pixels apart
    check_name(shape, SHAPES, "shape")
    c, s = np.cos(rotation), np.sin(rotation)
    turn = np.array([[c, s], [-s, c]])
    offset = np.array(centre) * ss - 0.5  # canvas sample k sits at continuous (k + 0.5) / ss
    canvas = np.zeros((size[0] * ss, size[1] * ss), np.uint8)
    for polygon, miter, value in zip(
        _unit_outline(shape, segments), _miters(shape, segments), (255, 0), strict=True
    ):
        if polygon is None:
            continue
        # cv2.fillPoly also fills samples on the outline, which fattens every region by about half a
        # sample; moving the edges inwards by that much makes the coverage match the exact area.
        canvas_xy = (polygon * (radius * ss) - 0.5 * miter) @ turn + offset
        cv2.fillPoly(canvas, [np.rint(canvas_xy * (1 << shift)).astype(np.int32)], value, shift=shift)
    # INTER_AREA with an integer factor is the exact block mean: (h*ss, w*ss) -> (h, w)
    return cv2.resize(canvas.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA) / 255.0


@lru_cache(maxsize=256)
def _miters(shape: str, segments: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-vertex offsets that move every edge of the outer outline and the hole one unit inwards."""
    outer, hole = _unit_outline(shape, segments)
    return _miter(outer), None if hole is None else _miter(hole)


def _miter(points: np.ndarray) -> np.ndarray:
    """(N, 2) vectors v such that points - d * v is the polygon with every edge moved d inwards."""
    edges = np.roll(points, -1, axis=0) - points  # edge i runs from vertex i to vertex i + 1
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1) / np.linalg.norm(edges, axis=1, keepdims=True)
    x, y = points[:, 0], points[:, 1]
    normals *= np.sign(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # make them point outwards
    before, after = np.roll(normals, 1, axis=0), normals  # the two edges meeting at each vertex
    return (before + after) / (1.0 + (before * after).sum(axis=1, keepdims=True))


def area(shape: str) -> float:
    """Area in square size-radii (exact polygon area of the outline)."""
    outer, hole = outline(shape, segments=256)
    return _polygon_area(outer) - (0.0 if hole is None else _polygon_area(hole))


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    if angle == 0.0:
        return points
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)
