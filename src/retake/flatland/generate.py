"""Random scenes: seeded samplers for backgrounds, objects, cameras and whole scenes.

Every object of a scene gets its own colour, so an instruction (and the judge) can name an object by colour
and shape without ambiguity. Speeds are given per second and converted with the frame rate, so a scene
looks alike at 8 and at 24 fps. Floats are rounded to 4 decimals to keep sidecar files readable (per-frame
rates of faster frame rates keep more: see `rate`).
"""

from __future__ import annotations

import math

import numpy as np

from retake.flatland.motion import EXTENT
from retake.flatland.palette import BACKGROUND_COLOURS, OBJECT_COLOURS, PATTERNS, SHAPES, SIZES
from retake.flatland.scene import Background, Camera, Scene, SceneObject

CAMERA_MODES = ("static", "pan", "zoom")
OBJECT_SPEED = (0.04, 0.16)  # world units per second an object drifts, slowest and fastest
_MAX_ZOOM_OUT = 0.5  # the largest share of the zoom a zoom-out loses per frame


def pick(rng: np.random.Generator, options) -> str:
    """One element of a sequence as a plain Python value (not a numpy scalar)."""
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _r(value: float) -> float:
    return round(float(value), 4)


def rate(value: float, fps: float, decimals: int = 4) -> float:
    """A per-frame rate (speed, spin, zoom rate) rounded to `decimals` up to 24 fps, to one more from 25 fps,
    and one more again for each further tenfold (240, 2400 fps): rates shrink as 1 / fps, and at 1000 fps 4
    decimals rounded a seventh of all objects to a standstill and stretched others by up to 25%. (Clips at
    24 fps and below are byte for byte as before; faster ones made before this rule differ from new ones.)"""
    extra = math.ceil(math.log10(fps / 24)) if fps > 24 else 0
    return round(float(value), decimals + extra)


def random_background(
    rng: np.random.Generator, *, avoid_colour: str | None = None, avoid_pattern: str | None = None
) -> Background:
    colour = pick(rng, [c for c in BACKGROUND_COLOURS if c != avoid_colour])
    return Background(
        pattern=pick(rng, [p for p in PATTERNS if p != avoid_pattern]),
        colour=colour,
        angle=_r(rng.uniform(0, np.pi)),
        period=_r(rng.uniform(0.18, 0.32)),
        seed=int(rng.integers(1 << 16)),
    )


def random_object(
    rng: np.random.Generator,
    id: int,
    colour: str,
    *,
    fps: float,
    shape: str | None = None,
    size: str | None = None,
    speed: tuple[float, float] = OBJECT_SPEED,
) -> SceneObject:
    """An object somewhere inside the world box, drifting at `speed` (world units per second)."""
    size = size or pick(rng, SIZES)
    reach = SIZES[size] * EXTENT
    heading = rng.uniform(0, 2 * np.pi)
    v = rng.uniform(*speed) / fps
    spin = rng.uniform(-1.0, 1.0) / fps if rng.random() < 0.5 else 0.0
    return SceneObject(
        id=id,
        shape=shape or pick(rng, SHAPES),
        colour=colour,
        size=size,
        x=_r(rng.uniform(reach, 1 - reach)),
        y=_r(rng.uniform(reach, 1 - reach)),
        vx=rate(v * np.cos(heading), fps),
        vy=rate(v * np.sin(heading), fps),
        rotation=_r(rng.uniform(0, 2 * np.pi)),
        spin=rate(spin, fps),
    )


def random_camera(rng: np.random.Generator, *, fps: float, mode: str | None = None) -> Camera:
    """A static camera, a slow pan in a random direction, or a slow zoom in or out."""
    mode = mode or pick(rng, CAMERA_MODES)
    if mode == "static":
        return Camera()
    if mode == "pan":
        heading, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.03, 0.06) / fps
        return Camera(vx=rate(speed * np.cos(heading), fps), vy=rate(speed * np.sin(heading), fps))
    if mode != "zoom":
        raise ValueError(f"unknown camera mode {mode!r}; expected one of {', '.join(CAMERA_MODES)}")
    change = rng.uniform(0.06, 0.12) / fps
    zoom_in = rng.random() < 0.5
    # The zoom multiplies by (1 + zoom_rate) per frame: below 0.24 fps a zoom-out's share per frame would
    # reach a half, and below 0.12 fps all of it (zoom 0); it is held at a half per frame there.
    zoom_rate = change if zoom_in else -min(change, _MAX_ZOOM_OUT)
    return Camera(zoom=1.0 if zoom_in else 1.25, zoom_rate=rate(zoom_rate, fps))


def random_scene(
    rng: np.random.Generator,
    *,
    fps: float,
    objects: tuple[int, int] = (1, 4),
    avoid_colour: str | None = None,
    avoid_pattern: str | None = None,
    camera: str | None = None,
) -> Scene:
    """A background, `objects` (inclusive range) objects of distinct colours, and a camera."""
    count = int(rng.integers(objects[0], objects[1] + 1))
    colours = rng.permutation(list(OBJECT_COLOURS))[:count]
    items = tuple(random_object(rng, i, str(c), fps=fps) for i, c in enumerate(colours))
    return Scene(
        random_background(rng, avoid_colour=avoid_colour, avoid_pattern=avoid_pattern),
        items,
        random_camera(rng, fps=fps, mode=camera),
    )


def unused_colours(scene: Scene) -> list[str]:
    """Object colours no object of the scene ever shows (including colours it changes to later)."""
    used = {o.colour for o in scene.objects} | {e.colour for o in scene.objects for e in o.events}
    return [c for c in OBJECT_COLOURS if c not in used]
