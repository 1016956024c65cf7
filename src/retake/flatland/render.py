"""The renderer: per-frame states -> anti-aliased RGB frames of any size, plus each object's visible weight.

Shapes are filled at `supersample` x the resolution and area-averaged back down (shapes.rasterize), which
gives exact-looking anti-aliased edges for a few tens of microseconds per object.
Background patterns are anti-aliased analytically (edges ramp over one pixel at any zoom).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retake.checks import size_pair
from retake.flatland import shapes
from retake.flatland.motion import EXTENT, simulate
from retake.flatland.palette import BACKGROUND_COLOURS, OBJECT_COLOURS, SIZES
from retake.flatland.scene import Background, CameraState, FrameState, ObjectState, Scene
from retake.flatland.style import apply_style

_TONE = 22.0  # +- grey levels of the two tones of stripes and checkers
_GRADIENT = 30.0  # a gradient spans +-this many grey levels across the world box
_NOISE = 26.0  # amplitude of the noise texture
_NOISE_CELL = 0.2  # noise grid spacing, world units
_NOISE_SPAN = (-2.0, 3.0)  # noise is defined on this box so pans and zoom-outs never leave it


@dataclass
class Rendering:
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    areas: dict[int, np.ndarray]  # object id -> (F,) visible area in pixels (0 where absent)
    weights: dict[int, np.ndarray] | None = None  # object id -> (F, H, W) float32 visible weight
    background_weight: np.ndarray | None = None  # (F, H, W) float32 share of the background in each pixel


def as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) from an int (square) or an (H, W) pair of ints (numpy ones too); ValueError naming anything else:
    a float or a third item would otherwise be truncated or dropped without a word."""
    h, w = size_pair(size)
    if h < 8 or w < 8:
        raise ValueError(f"video size must be at least 8x8 pixels, got {size}")
    return h, w


def render(
    scene: Scene,
    num_frames: int,
    size: int | tuple[int, int] = 64,
    *,
    weights: bool = False,
    supersample: int = 4,
) -> Rendering:
    """Render `num_frames` frames of `scene` at `size` ((H, W) or square int).

    With `weights=True` also returns, per object, its visible weight per pixel (alpha after occlusion by
    the objects on top), the basis of exact edit masks.
    """
    return render_states(
        simulate(scene, num_frames), scene.background, size, scene.style, weights, supersample
    )


def render_states(
    states: list[FrameState],
    background: Background,
    size: int | tuple[int, int] = 64,
    style: str | None = None,
    weights: bool = False,
    supersample: int = 4,
) -> Rendering:
    """Draw simulated frame states over `background`: one frame per state at `size` (N or (H, W)), with each
    object's visible area per frame and, with `weights`, per-pixel coverage maps of every object and of the
    background (the masks and loss weights of paired edits). Edges are antialiased by drawing at
    `supersample` times the size and averaging down; `style` applies a global style (grayscale, invert, ...)."""
    h, w = as_size(size)
    ids = sorted({o.id for s in states for o in s.objects})
    frames = np.empty((len(states), h, w, 3), np.uint8)
    areas = {i: np.zeros(len(states), np.float32) for i in ids}
    maps = {i: np.zeros((len(states), h, w), np.float32) for i in ids} if weights else None
    bg_maps = np.zeros((len(states), h, w), np.float32) if weights else None
    noise = _noise_grid(background.seed) if background.pattern == "noise" else None
    seen_from, backdrop = None, None  # a still camera sees the same background in every frame
    for f, state in enumerate(states):
        if backdrop is None or state.camera != seen_from:
            seen_from, backdrop = state.camera, background_image(background, state.camera, (h, w), noise)
        image = backdrop.copy()
        layers = [_coverage(o, state.camera, (h, w), supersample) for o in state.objects]
        for obj, layer in zip(state.objects, layers, strict=True):
            if layer is not None:
                (y0, y1, x0, x1), alpha = layer
                colour = np.array(OBJECT_COLOURS[obj.colour], np.float32)
                patch = image[y0:y1, x0:x1]
                patch += alpha[..., None] * (colour - patch)
        if style is not None:
            image = apply_style(image, style)
        frames[f] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        remaining = np.ones((h, w), np.float32)  # share of each pixel not yet claimed by a layer above
        for obj, layer in zip(reversed(state.objects), reversed(layers), strict=True):
            if layer is None:
                continue
            (y0, y1, x0, x1), alpha = layer
            visible = alpha * remaining[y0:y1, x0:x1]
            remaining[y0:y1, x0:x1] -= visible
            areas[obj.id][f] = float(visible.sum())
            if maps is not None:
                maps[obj.id][f, y0:y1, x0:x1] = visible
        if bg_maps is not None:
            bg_maps[f] = remaining
    return Rendering(frames, areas, maps, bg_maps)


def object_pixels(obj: ObjectState, camera: CameraState, size: tuple[int, int]) -> tuple[float, float, float]:
    """Centre (x, y) in continuous pixel coordinates (pixel i spans [i, i+1)) and size radius in pixels."""
    h, w = size
    cx = w / 2 + (obj.x - camera.x) * w * camera.zoom
    cy = h / 2 + (obj.y - camera.y) * h * camera.zoom
    return cx, cy, SIZES[obj.size] * min(h, w) * camera.zoom


def _coverage(obj: ObjectState, camera: CameraState, size: tuple[int, int], ss: int):
    """((y0, y1, x0, x1), alpha (y1-y0, x1-x0) float32) of the object, or None when it is out of view."""
    h, w = size
    cx, cy, radius = object_pixels(obj, camera, size)
    reach = radius * EXTENT
    x0, y0 = max(int(np.floor(cx - reach)), 0), max(int(np.floor(cy - reach)), 0)
    x1, y1 = min(int(np.ceil(cx + reach)), w), min(int(np.ceil(cy + reach)), h)
    if x1 <= x0 or y1 <= y0:
        return None
    alpha = shapes.rasterize(obj.shape, obj.rotation, radius, (cx - x0, cy - y0), (y1 - y0, x1 - x0), ss)
    return (y0, y1, x0, x1), alpha


# ---- backgrounds ------------------------------------------------------------------------------------------


def background_image(
    background: Background, camera: CameraState, size: tuple[int, int], noise: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) float32 background seen by the camera: the named colour plus a lightness pattern."""
    h, w = size
    base = np.array(BACKGROUND_COLOURS[background.colour], np.float32)
    if background.pattern == "solid":
        return np.broadcast_to(base, (h, w, 3)).copy()
    u, v, pixel = _world_grid(camera, size)
    tone = _pattern(background, u, v, pixel, noise)  # (H, W), grey levels added to every channel
    return np.clip(base + tone[..., None], 0.0, 255.0)


def _world_grid(camera: CameraState, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Isotropic world coordinates (u, v) of pixel centres, in units of min(H, W) at zoom 1, centred on the
    world box; and the size of one pixel in those units."""
    h, w = size
    m = min(h, w)
    xs = camera.x + (np.arange(w, dtype=np.float32) + 0.5 - w / 2) / (w * camera.zoom)
    ys = camera.y + (np.arange(h, dtype=np.float32) + 0.5 - h / 2) / (h * camera.zoom)
    u = ((xs - 0.5) * w / m)[None, :].repeat(h, 0)
    v = ((ys - 0.5) * h / m)[:, None].repeat(w, 1)
    return u, v, 1.0 / (m * camera.zoom)


def _pattern(
    bg: Background, u: np.ndarray, v: np.ndarray, pixel: float, noise: np.ndarray | None
) -> np.ndarray:
    c, s = np.cos(bg.angle), np.sin(bg.angle)
    along, across = u * c + v * s, -u * s + v * c
    if bg.pattern == "gradient":
        return np.clip(along * 2 * _GRADIENT, -1.5 * _GRADIENT, 1.5 * _GRADIENT)
    if bg.pattern == "stripes":
        return _TONE * _square_wave(along, bg.period, pixel)
    if bg.pattern == "checker":
        return _TONE * _square_wave(along, bg.period, pixel) * _square_wave(across, bg.period, pixel)
    return _NOISE * _sample_noise(noise if noise is not None else _noise_grid(bg.seed), u, v)


def _square_wave(t: np.ndarray, period: float, pixel: float) -> np.ndarray:
    """+-1 square wave of t, its edges ramped over about one pixel (analytic anti-aliasing)."""
    wave = np.sin(2 * np.pi * t / period)
    slope = 2 * np.pi * pixel / period  # change of `wave` per pixel at a zero crossing
    return np.clip(wave / max(slope, 1e-6), -1.0, 1.0)


def _noise_grid(seed: int) -> np.ndarray:
    cells = round((_NOISE_SPAN[1] - _NOISE_SPAN[0]) / _NOISE_CELL) + 1
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)


def _sample_noise(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth value noise: the random grid interpolated bicubically at world coordinates (u, v)."""
    map_x = ((u - _NOISE_SPAN[0]) / _NOISE_CELL).astype(np.float32)
    map_y = ((v - _NOISE_SPAN[0]) / _NOISE_CELL).astype(np.float32)
    return np.clip(cv2.remap(grid, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT), -1.0, 1.0)
