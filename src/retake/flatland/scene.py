"""The scene model: what a Flatland video shows, independent of its pixel size, plus per-frame states.

Coordinates are view fractions at zoom 1: x runs 0..1 across the width and y 0..1 down the height of the
view the camera starts with (the "world box" objects bounce in). Object sizes are radii in units of
min(H, W), so circles stay round in non-square videos. All dataclasses are frozen and round-trip through
plain JSON (`to_json` / `from_json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from retake.checks import check_field_types, check_int, check_seed
from retake.flatland.palette import (
    BACKGROUND_COLOURS,
    OBJECT_COLOURS,
    PATTERNS,
    SHAPES,
    SIZES,
    STYLES,
    check_name,
)

EVENT_KINDS = ("stop", "recolour", "leave")


@dataclass(frozen=True)
class Background:
    """A muted background: a pattern drawn around one named colour (its mean stays close to that colour)."""

    pattern: str = "solid"
    colour: str = "gray"
    angle: float = 0.0  # direction of the gradient or stripes, radians
    period: float = 0.25  # stripes/checker period, in units of min(H, W) at zoom 1
    seed: int = 0  # texture of the noise pattern

    def __post_init__(self) -> None:
        check_field_types(self)  # a NaN angle or period would draw garbage, not fail
        check_seed("background seed", self.seed)
        check_name(self.pattern, PATTERNS, "background pattern")
        check_name(self.colour, BACKGROUND_COLOURS, "background colour")
        if self.period <= 0:
            raise ValueError(f"background period must be > 0, got {self.period}")


@dataclass(frozen=True)
class Event:
    """Something that happens to an object from `frame` on: it stops, changes colour, or leaves the view."""

    frame: int
    kind: str
    colour: str | None = None  # the new colour of a "recolour"
    velocity: tuple[float, float] | None = None  # the exit velocity of a "leave"

    def __post_init__(self) -> None:
        check_field_types(self)
        check_int("event frame", self.frame, minimum=0)
        check_name(self.kind, EVENT_KINDS, "event kind")
        if self.kind == "recolour":
            check_name(str(self.colour), OBJECT_COLOURS, "event colour")
        if self.kind == "leave" and self.velocity is None:  # it would stay where it is, leaving nothing
            raise ValueError(
                f"a 'leave' event needs the exit velocity (vx, vy), got velocity=None at {self.frame}"
            )


@dataclass(frozen=True)
class SceneObject:
    """One object and its motion. It bounces inside the world box once fully inside it (`bounce`), so an
    object that starts outside the box with an inward velocity enters the view."""

    id: int
    shape: str
    colour: str
    size: str = "medium"
    x: float = 0.5
    y: float = 0.5
    vx: float = 0.0  # view fractions per frame
    vy: float = 0.0
    rotation: float = 0.0  # radians
    spin: float = 0.0  # radians per frame
    bounce: bool = True
    appear: int = 0  # the first frame it exists in; (x, y) is its position then
    events: tuple[Event, ...] = ()

    def __post_init__(self) -> None:
        check_field_types(self)  # a NaN or infinite position fails deep in the renderer
        check_int("object appear", self.appear, minimum=0)
        check_name(self.shape, SHAPES, "shape")
        check_name(self.colour, OBJECT_COLOURS, "object colour")
        check_name(self.size, SIZES, "object size")

    @property
    def look(self) -> str:
        """How an instruction names it, e.g. 'red star'."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Camera:
    """Camera centre (world coordinates) and zoom at frame 0, with a constant pan and zoom rate."""

    x: float = 0.5
    y: float = 0.5
    zoom: float = 1.0
    vx: float = 0.0  # pan, world units per frame (positive: the camera moves right, content moves left)
    vy: float = 0.0
    zoom_rate: float = 0.0  # the zoom multiplies by (1 + zoom_rate) every frame

    def __post_init__(self) -> None:
        check_field_types(self)  # NaN passes the comparisons below
        if self.zoom <= 0 or self.zoom_rate <= -1:
            raise ValueError(f"camera zoom must stay > 0, got zoom={self.zoom} zoom_rate={self.zoom_rate}")


@dataclass(frozen=True)
class Scene:
    """Background, objects (drawn in order, last on top), camera motion and an optional global style."""

    background: Background = field(default_factory=Background)
    objects: tuple[SceneObject, ...] = ()
    camera: Camera = field(default_factory=Camera)
    style: str | None = None

    def __post_init__(self) -> None:
        if self.style is not None:
            check_name(self.style, STYLES, "style")
        ids = [o.id for o in self.objects]
        if len(set(ids)) != len(ids):
            raise ValueError(f"object ids must be unique, got {ids}")

    def with_objects(self, objects) -> Scene:
        return replace(self, objects=tuple(objects))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Scene:
        """The scene `to_json` wrote; a key that is not a field is named (as `Edit.from_json` does)."""
        objects = []
        for o in _known(data, Scene, "scene").get("objects", ()):
            events = tuple(_event_from_json(e) for e in _known(o, SceneObject, "object").get("events", ()))
            objects.append(SceneObject(**{**o, "events": events}))
        return cls(
            background=Background(**_known(data.get("background", {}), Background, "background")),
            objects=tuple(objects),
            camera=Camera(**_known(data.get("camera", {}), Camera, "camera")),
            style=data.get("style"),
        )


def _known(data: object, cls: type, what: str) -> dict:
    """`data` if it is a dict of `cls`'s fields only; ValueError naming the first that is not."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object, got {data!r}")
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known: {sorted(fields)}")
    return data


def _event_from_json(data: dict) -> Event:
    velocity = _known(data, Event, "event").get("velocity")
    return Event(**{**data, "velocity": None if velocity is None else tuple(velocity)})


# ---- per-frame states (what the renderer draws and the ground truth records) -------------------------


@dataclass(frozen=True)
class ObjectState:
    id: int
    shape: str
    colour: str
    size: str
    x: float
    y: float
    rotation: float


@dataclass(frozen=True)
class CameraState:
    x: float
    y: float
    zoom: float


@dataclass(frozen=True)
class FrameState:
    camera: CameraState
    objects: tuple[ObjectState, ...]  # drawing order, last on top
