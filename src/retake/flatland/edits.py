"""Structured edits: what an instruction asks for, how to apply it to a scene, and how to sample one.

An edit names objects by look (colour and/or shape), as an instruction would. `apply_edit` changes only
what the edit names and keeps every motion, so rendering the edited scene gives a target with motion
identical to the source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from retake.checks import as_generator
from retake.flatland.generate import pick, random_background, rate, unused_colours
from retake.flatland.palette import OBJECT_COLOURS, SHAPES, SIZES, STYLES, check_name
from retake.flatland.scene import Background, Scene, SceneObject

EDIT_KINDS: tuple[str, ...] = ("add", "remove", "replace", "recolour", "background", "style")
OBJECT_KINDS: tuple[str, ...] = ("remove", "replace", "recolour")  # edits of an existing object


@dataclass(frozen=True)
class Edit:
    """One edit. Which fields are required depends on `kind`:

    add: new_shape, new_colour (new_size, position, velocity optional)
    remove: target_colour and/or target_shape
    replace: target, and new_shape and/or new_colour
    recolour: target, new_colour
    background: background
    style: style
    """

    kind: str
    target_shape: str | None = None
    target_colour: str | None = None
    new_shape: str | None = None
    new_colour: str | None = None
    new_size: str | None = None
    position: tuple[float, float] | None = None  # add: start position (world coordinates); None: a free spot
    velocity: tuple[float, float] | None = None  # add: world units per frame; None: it stays put
    background: Background | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        check_name(self.kind, EDIT_KINDS, "edit kind")
        for name, allowed in (("target_shape", SHAPES), ("new_shape", SHAPES), ("new_size", SIZES)):
            if getattr(self, name) is not None:
                check_name(getattr(self, name), allowed, name.replace("_", " "))
        for name in ("target_colour", "new_colour"):
            if getattr(self, name) is not None:
                check_name(getattr(self, name), OBJECT_COLOURS, name.replace("_", " "))
        missing = self._missing()
        if missing:
            raise ValueError(f"a {self.kind!r} edit needs {missing}")

    def _missing(self) -> str:
        has_target = self.target_colour is not None or self.target_shape is not None
        if self.kind == "add" and (self.new_shape is None or self.new_colour is None):
            return "new_shape and new_colour"
        if self.kind in OBJECT_KINDS and not has_target:
            return "target_colour or target_shape"
        if self.kind == "replace" and self.new_shape is None and self.new_colour is None:
            return "new_shape or new_colour"
        if self.kind == "recolour" and self.new_colour is None:
            return "new_colour"
        if self.kind == "background" and self.background is None:
            return "background"
        if self.kind == "style":
            if self.style is None:
                return "style"
            check_name(self.style, STYLES, "style")
        return ""

    @property
    def target(self) -> str:
        """How the edited object is named, e.g. 'red star' (or 'red object' / 'star' for partial names)."""
        return _look(self.target_colour, self.target_shape)

    @property
    def new(self) -> str:
        """The look after the edit: the added or replacing object, or the recoloured one."""
        if self.kind == "recolour":
            return _look(self.new_colour, self.target_shape)
        return _look(self.new_colour or self.target_colour, self.new_shape or self.target_shape)

    def to_json(self) -> dict:
        """Plain JSON; fields that are unset (None) are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict) -> Edit:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown edit fields {sorted(unknown)}")
        values = dict(data)
        if values.get("background") is not None:
            values["background"] = Background(**values["background"])
        for name in ("position", "velocity"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def _look(colour: str | None, shape: str | None) -> str:
    return f"{colour or ''} {shape or 'object'}".strip()


# ---- applying --------------------------------------------------------------------------------------------


def find_target(scene: Scene, edit: Edit) -> SceneObject:
    """The one object of the scene that the edit names (by its colour at appearance and/or its shape)."""
    matches = [
        o
        for o in scene.objects
        if (edit.target_colour in (None, o.colour)) and (edit.target_shape in (None, o.shape))
    ]
    if len(matches) != 1:
        what = "no object" if not matches else f"{len(matches)} objects"
        raise ValueError(f"{what} in the scene match the edit target {edit.target!r}")
    return matches[0]


def apply_edit(scene: Scene, edit: Edit) -> Scene:
    """The scene with the edit applied; everything the edit does not name (motion, camera, order) is kept."""
    if edit.kind == "background":
        return replace(scene, background=edit.background)
    if edit.kind == "style":
        return replace(scene, style=edit.style)
    if edit.kind == "add":
        return scene.with_objects([*scene.objects, _new_object(scene, edit)])
    target = find_target(scene, edit)
    if edit.kind == "remove":
        return scene.with_objects(o for o in scene.objects if o.id != target.id)
    changed = replace(
        target,
        colour=edit.new_colour or target.colour,
        shape=edit.new_shape or target.shape,
        size=edit.new_size or target.size,
    )
    return scene.with_objects(changed if o.id == target.id else o for o in scene.objects)


def _new_object(scene: Scene, edit: Edit) -> SceneObject:
    position = edit.position or _free_spot(scene)
    return SceneObject(
        id=max((o.id for o in scene.objects), default=-1) + 1,
        shape=str(edit.new_shape),
        colour=str(edit.new_colour),
        size=edit.new_size or "medium",
        x=position[0],
        y=position[1],
        vx=edit.velocity[0] if edit.velocity else 0.0,
        vy=edit.velocity[1] if edit.velocity else 0.0,
    )


def _free_spot(scene: Scene) -> tuple[float, float]:
    """The point of a 7x7 grid farthest from every object's start (deterministic)."""
    grid = [(0.2 + 0.1 * i, 0.2 + 0.1 * j) for j in range(7) for i in range(7)]
    if not scene.objects:
        return (0.5, 0.5)
    return max(grid, key=lambda p: min((p[0] - o.x) ** 2 + (p[1] - o.y) ** 2 for o in scene.objects))


# ---- sampling --------------------------------------------------------------------------------------------


def sample_edit(rng: np.random.Generator, scene: Scene, kind: str, *, fps: float = 8.0) -> Edit:
    """A random edit of `kind` that is valid for `scene` (new colours are unused by the scene).

    Raises ValueError when the scene cannot take that kind (no objects to edit, no free colour). `rng` may
    also be a seed.
    """
    rng = as_generator("rng", rng)
    check_name(kind, EDIT_KINDS, "edit kind")
    if kind == "style":
        return Edit("style", style=pick(rng, STYLES))
    if kind == "background":
        return Edit("background", background=random_background(rng, avoid_colour=scene.background.colour))
    free = unused_colours(scene)
    if not free or (kind != "add" and not scene.objects):
        raise ValueError(
            f"scene cannot take a {kind!r} edit (objects: {len(scene.objects)}, free colours: {free})"
        )
    if kind == "add":
        heading, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.16) / fps
        return Edit(
            "add",
            new_shape=pick(rng, SHAPES),
            new_colour=pick(rng, free),
            new_size=pick(rng, SIZES),
            position=(round(float(rng.uniform(0.25, 0.75)), 4), round(float(rng.uniform(0.25, 0.75)), 4)),
            velocity=(rate(speed * np.cos(heading), fps), rate(speed * np.sin(heading), fps)),
        )
    target = scene.objects[int(rng.integers(len(scene.objects)))]
    named = {"target_colour": target.colour, "target_shape": target.shape}
    if kind == "remove":
        return Edit("remove", **named)
    if kind == "recolour":
        return Edit("recolour", **named, new_colour=pick(rng, free))
    new_shape = pick(rng, [s for s in SHAPES if s != target.shape])
    new_colour = pick(rng, free) if rng.random() < 0.5 else None  # shape-only or whole-object replacement
    return Edit("replace", **named, new_shape=new_shape, new_colour=new_colour)
