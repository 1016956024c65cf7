"""Motion: steps every object and the camera through time, turning a Scene into per-frame states."""

from __future__ import annotations

from retake.flatland.palette import SIZES
from retake.flatland.scene import CameraState, FrameState, ObjectState, Scene, SceneObject

# The largest shape reaches 1.2 size-radii from its centre (see shapes.py); bouncing keeps all of it inside.
EXTENT = 1.2


def camera_state(scene: Scene, frame: int) -> CameraState:
    cam = scene.camera
    return CameraState(
        cam.x + cam.vx * frame, cam.y + cam.vy * frame, cam.zoom * (1.0 + cam.zoom_rate) ** frame
    )


def object_track(obj: SceneObject, num_frames: int) -> list[ObjectState | None]:
    """The object's state at every frame; None before it appears."""
    track: list[ObjectState | None] = [None] * min(obj.appear, num_frames)
    reach = SIZES[obj.size] * EXTENT
    x, y, vx, vy, rot, spin, colour = obj.x, obj.y, obj.vx, obj.vy, obj.rotation, obj.spin, obj.colour
    bounce_on = obj.bounce
    inside = _inside(x, y, reach)
    events = sorted(obj.events, key=lambda e: e.frame)
    for frame in range(obj.appear, num_frames):
        for event in events:
            if event.frame != frame:
                continue
            if event.kind == "stop":
                vx = vy = spin = 0.0
            elif event.kind == "recolour":
                colour = str(event.colour)
            elif event.kind == "leave":
                bounce_on = False
                if event.velocity is not None:
                    vx, vy = event.velocity
        if frame > obj.appear:
            x, y, rot = x + vx, y + vy, rot + spin
            # Walls only act once the object is wholly inside, so objects can enter from outside the box.
            inside = inside or _inside(x, y, reach)
            if bounce_on and inside:
                x, vx = _reflect(x, vx, reach)
                y, vy = _reflect(y, vy, reach)
        track.append(ObjectState(obj.id, obj.shape, colour, obj.size, x, y, rot))
    return track


def simulate(scene: Scene, num_frames: int) -> list[FrameState]:
    """Per-frame camera and object states for frames 0..num_frames-1 (objects in drawing order)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    tracks = [object_track(o, num_frames) for o in scene.objects]
    frames = []
    for f in range(num_frames):
        objects = tuple(state for track in tracks if (state := track[f]) is not None)
        frames.append(FrameState(camera_state(scene, f), objects))
    return frames


def _inside(x: float, y: float, reach: float) -> bool:
    return reach <= x <= 1 - reach and reach <= y <= 1 - reach


def _reflect(p: float, v: float, reach: float) -> tuple[float, float]:
    if p < reach:
        return 2 * reach - p, abs(v)
    if p > 1 - reach:
        return 2 * (1 - reach) - p, -abs(v)
    return p, v
