"""Raw footage: long videos of several scenes joined by hard cuts, in which objects enter, leave, stop and
change colour while the camera pans or zooms, each with a ground-truth sidecar (truth.FootageTruth).

It stands in for the raw videos of the unpaired-pair pipeline (scene split -> clips -> describe): the cuts
and per-frame states let tests measure each stage exactly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich.progress import Progress

from retake.checks import derive_seed
from retake.flatland import io
from retake.flatland.generate import pick, random_object, random_scene, rate, unused_colours
from retake.flatland.motion import EXTENT, object_track, simulate
from retake.flatland.palette import SIZES
from retake.flatland.render import as_size, render_states
from retake.flatland.scene import Background, Event, FrameState, Scene, SceneObject
from retake.flatland.truth import FootageTruth, FrameTruth, ObjectTruth, SceneSpan

FOOTAGE_FORMAT = "retake.flatland.footage/1"
# What make_footage writes (a killed video write leaves .<name>.partial.mp4): all `overwrite` may delete.
_OWN_FILE = re.compile(r"\.?footage_\d{4,}(\.partial)?\.(mp4|json)")


@dataclass(frozen=True)
class FootageConfig:
    scene_seconds: tuple[float, float] = (2.0, 6.0)  # length of each scene
    min_scene_seconds: float = 1.0  # a shorter remainder joins the scene before it
    objects: tuple[int, int] = (1, 3)  # objects at the start of a scene (inclusive range)
    enter_chance: float = 0.6  # chance that one more object enters during a scene
    # Per object, the chance of one event during the scene: stop, change colour, leave the view.
    event_chances: tuple[tuple[str, float], ...] = (("stop", 0.2), ("recolour", 0.2), ("leave", 0.15))
    travel_speed: tuple[float, float] = (0.2, 0.35)  # world units per second of entering and leaving objects


def make_footage(
    out_dir: str | Path,
    *,
    videos: int,
    seconds: float,
    size: int | tuple[int, int] = 64,
    fps: float = 24,
    seed: int = 0,
    progress: bool = True,
    config: FootageConfig | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write footage_0000.mp4 + footage_0000.json, ... to `out_dir`; returns the mp4 paths.

    Video i is determined by (seed, i) alone, so the same arguments give byte-identical files. `out_dir` must
    be empty or absent, or hold footage made with the same settings (a stopped run continues there); footage
    of other settings is refused unless `overwrite`, which deletes it first (see `io.claim_folder`): stale
    videos of an earlier run would otherwise sit beside the new ones and be curated with them.
    """
    if videos < 1:
        raise ValueError(f"videos must be >= 1, got {videos}")
    _check_timing(seconds, fps)
    height, width = io.video_size(size)  # before anything is written
    config = config or FootageConfig()
    settings = {"videos": videos, "seconds": float(seconds), "size": [height, width], "fps": float(fps)}
    settings |= {"seed": seed, "config": dataclasses.asdict(config)}
    out = Path(out_dir).expanduser()  # else '~/footage' makes a folder named '~' here
    io.claim_folder(out, FOOTAGE_FORMAT, settings, _OWN_FILE, overwrite=overwrite)
    paths = []
    # Counted in frames, advanced scene by scene: one long video at a large size takes minutes on its own.
    with Progress(*Progress.get_default_columns(), disable=not progress) as bar:
        task = bar.add_task("footage", total=videos * footage_frames(seconds, fps))
        for i in range(videos):
            path, sidecar = out / f"footage_{i:04d}.mp4", out / f"footage_{i:04d}.json"
            if path.is_file() and io.read_json(sidecar):  # the sidecar is written last
                bar.advance(task, footage_frames(seconds, fps))
            else:
                frames, truth = footage_video(
                    seconds,
                    size,
                    fps,
                    seed=derive_seed(seed, i),
                    config=config,
                    on_scene=lambda count: bar.advance(task, count),
                )
                io.write_video(frames, truth.fps, path)
                truth.save(sidecar)
            paths.append(path)
    return paths


def footage_video(
    seconds: float,
    size: int | tuple[int, int] = 64,
    fps: float = 24,
    *,
    seed: int,
    config: FootageConfig | None = None,
    on_scene: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, FootageTruth]:
    """(frames (F, H, W, 3) uint8, ground truth) of one footage video, in memory. `on_scene` hears the frame
    count of each scene once it is rendered (for progress)."""
    config = config or FootageConfig()
    _check_timing(seconds, fps)
    hw = as_size(size)
    rng = np.random.default_rng(seed)
    spans = plan_scenes(rng, footage_frames(seconds, fps), fps, config)
    chunks, frames, scenes, events = [], [], [], []
    next_id, last = 0, None
    for index, (start, end) in enumerate(spans):
        scene = footage_scene(rng, end - start, fps, config, first_id=next_id, avoid=last)
        next_id += len(scene.objects)
        last = scene.background
        states = simulate(scene, end - start)
        rendering = render_states(states, scene.background, hw, scene.style)
        chunks.append(rendering.frames)
        frames.extend(_frame_truths(states, rendering.areas, index))
        scenes.append(SceneSpan(start, end, scene))
        events.extend(_events(scene, start, index))
        if on_scene is not None:
            on_scene(end - start)
    truth = FootageTruth(
        fps=float(fps),
        num_frames=spans[-1][1],
        size=hw,
        cuts=[start for start, _ in spans[1:]],
        frames=frames,
        scenes=scenes,
        events=sorted(events, key=lambda e: (e["frame"], e["object"])),
        seed=seed,
    )
    return np.concatenate(chunks), truth


def footage_frames(seconds: float, fps: float) -> int:
    """Frames in a video of `seconds` at `fps`: rounded to a whole number (halves to even, as Python rounds),
    at least one."""
    return max(1, round(seconds * fps))


def _check_timing(seconds: float, fps: float) -> None:
    io.check_positive("seconds", seconds)
    io.check_positive("fps", fps)


def plan_scenes(
    rng: np.random.Generator, num_frames: int, fps: float, config: FootageConfig
) -> list[tuple[int, int]]:
    """[(start, end), ...] covering 0..num_frames; scene lengths drawn from config.scene_seconds."""
    spans: list[tuple[int, int]] = []
    start = 0
    shortest = max(1, round(config.min_scene_seconds * fps))
    while start < num_frames:
        length = max(1, round(rng.uniform(*config.scene_seconds) * fps))
        end = min(start + length, num_frames)
        if num_frames - end < shortest:
            end = num_frames  # too short a remainder: it joins this scene
        spans.append((start, end))
        start = end
    return spans


def footage_scene(
    rng: np.random.Generator,
    length: int,
    fps: float,
    config: FootageConfig,
    *,
    first_id: int = 0,
    avoid: Background | None = None,
) -> Scene:
    """A random scene with events: objects stop, change colour or leave, and one may enter. Its background
    differs in colour and pattern from `avoid` (the scene before the cut), so every cut is visible."""
    scene = random_scene(
        rng,
        fps=fps,
        objects=config.objects,
        avoid_colour=avoid and avoid.colour,
        avoid_pattern=avoid and avoid.pattern,
    )
    objects = [replace(o, id=first_id + i) for i, o in enumerate(scene.objects)]
    scene = scene.with_objects(objects)
    if length >= 4:
        objects = [_with_event(rng, scene, o, length, fps, config) for o in objects]
        scene = scene.with_objects(objects)
        if rng.random() < config.enter_chance and unused_colours(scene):
            newcomer = _entering(rng, scene, first_id + len(objects), length, fps, config)
            scene = scene.with_objects([*objects, newcomer])
    return scene


def _with_event(
    rng: np.random.Generator, scene: Scene, obj: SceneObject, length: int, fps: float, config: FootageConfig
) -> SceneObject:
    frame = int(rng.integers(max(1, length // 5), max(2, 4 * length // 5)))
    roll, kind = rng.random(), None
    for name, chance in config.event_chances:
        if roll < chance:
            kind = name
            break
        roll -= chance
    if kind == "stop":
        return replace(obj, events=(Event(frame, "stop"),))
    if kind == "recolour":
        free = unused_colours(scene)
        return replace(obj, events=(Event(frame, "recolour", colour=pick(rng, free)),)) if free else obj
    if kind == "leave":
        state = object_track(obj, frame + 1)[frame]
        assert state is not None  # the object exists from frame 0
        # head for the nearest edge of the world box
        exits = {(-1.0, 0.0): state.x, (1.0, 0.0): 1 - state.x, (0.0, -1.0): state.y, (0.0, 1.0): 1 - state.y}
        direction = min(exits, key=exits.__getitem__)
        speed = rng.uniform(*config.travel_speed) / fps
        velocity = (rate(direction[0] * speed, fps, 5), rate(direction[1] * speed, fps, 5))
        return replace(obj, events=(Event(frame, "leave", velocity=velocity),))
    return obj


def _entering(
    rng: np.random.Generator, scene: Scene, obj_id: int, length: int, fps: float, config: FootageConfig
) -> SceneObject:
    """An object that appears just outside one edge of the world box and drifts in."""
    base = random_object(rng, obj_id, pick(rng, unused_colours(scene)), fps=fps)
    reach = SIZES[base.size] * EXTENT
    along = round(float(rng.uniform(0.25, 0.75)), 4)
    speed = rng.uniform(*config.travel_speed) / fps
    drift = rng.uniform(-0.3, 0.3) * speed
    edge = int(rng.integers(4))
    x, y, vx, vy = [
        (-reach, along, speed, drift),
        (1 + reach, along, -speed, drift),
        (along, -reach, drift, speed),
        (along, 1 + reach, drift, -speed),
    ][edge]
    appear = int(rng.integers(max(1, length // 6), max(2, 3 * length // 5)))
    return replace(
        base, x=round(x, 4), y=round(y, 4), vx=rate(vx, fps, 5), vy=rate(vy, fps, 5), appear=appear, events=()
    )


def _frame_truths(states: list[FrameState], areas: dict[int, np.ndarray], index: int) -> list[FrameTruth]:
    truths = []
    for f, state in enumerate(states):
        objects = tuple(
            ObjectTruth(
                id=o.id,
                shape=o.shape,
                colour=o.colour,
                size=o.size,
                x=o.x,
                y=o.y,
                rotation=o.rotation,
                visible=bool(areas[o.id][f] >= 1.0),
                area=float(areas[o.id][f]),
            )
            for o in state.objects
        )
        truths.append(FrameTruth(index, state.camera, objects))
    return truths


def _events(scene: Scene, start: int, index: int) -> list[dict]:
    events = []
    for obj in scene.objects:
        if obj.appear > 0:
            events.append({"frame": start + obj.appear, "scene": index, "object": obj.id, "kind": "enter"})
        for event in obj.events:
            entry = {"frame": start + event.frame, "scene": index, "object": obj.id, "kind": event.kind}
            if event.colour is not None:
                entry["colour"] = event.colour
            events.append(entry)
    return events
