"""The ground-truth sidecar of raw footage: cuts, scenes, events and every object's state in every frame.

Only oracles (the describer, tests, benchmarks) read it; the data pipeline sees just the pixels.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retake import files
from retake.flatland.scene import CameraState, Scene

FORMAT = "retake.flatland.footage/1"


@dataclass(frozen=True)
class ObjectTruth:
    id: int
    shape: str
    colour: str
    size: str
    x: float  # world coordinates (view fractions at zoom 1)
    y: float
    rotation: float
    visible: bool  # at least one pixel of it shows
    area: float  # visible area in pixels (after occlusion and clipping)

    def screen_xy(self, camera: CameraState) -> tuple[float, float]:
        """Position in the frame (0..1 across, 0..1 down), through the camera."""
        return 0.5 + (self.x - camera.x) * camera.zoom, 0.5 + (self.y - camera.y) * camera.zoom


@dataclass(frozen=True)
class FrameTruth:
    scene: int
    camera: CameraState
    objects: tuple[ObjectTruth, ...]  # drawing order, last on top


@dataclass(frozen=True)
class SceneSpan:
    start: int
    end: int  # exclusive
    scene: Scene


@dataclass
class FootageTruth:
    fps: float
    num_frames: int
    size: tuple[int, int]  # (H, W)
    cuts: list[int]  # frames where a new scene starts (0 excluded)
    frames: list[FrameTruth] = field(default_factory=list)
    scenes: list[SceneSpan] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # {"frame", "scene", "object", "kind", ...}
    seed: int | None = None

    def scene_of(self, frame: int) -> int:
        """Index of the scene that frame `frame` belongs to."""
        if not 0 <= frame < self.num_frames:
            raise ValueError(f"frame {frame} is outside the footage (0..{self.num_frames - 1})")
        return bisect.bisect_right(self.cuts, frame)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "size": list(self.size),
            "cuts": list(self.cuts),
            "seed": self.seed,
            "scenes": [{"start": s.start, "end": s.end, "scene": s.scene.to_json()} for s in self.scenes],
            "events": self.events,
            "frames": [_frame_json(f) for f in self.frames],
        }

    @classmethod
    def from_json(cls, data: dict) -> FootageTruth:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"not a Flatland footage sidecar (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        return cls(
            fps=float(data["fps"]),
            num_frames=int(data["num_frames"]),
            size=(int(data["size"][0]), int(data["size"][1])),
            cuts=[int(c) for c in data["cuts"]],
            frames=[_frame_from_json(f) for f in data["frames"]],
            scenes=[SceneSpan(s["start"], s["end"], Scene.from_json(s["scene"])) for s in data["scenes"]],
            events=list(data["events"]),
            seed=data.get("seed"),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        files.write_text(
            path, json.dumps(self.to_json(), separators=(",", ":"), default=files.json_default) + "\n"
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> FootageTruth:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"footage sidecar not found: {path}")
        return cls.from_json(json.loads(path.read_text()))


def _frame_json(frame: FrameTruth) -> dict:
    cam = frame.camera
    return {
        "scene": frame.scene,
        "camera": {"x": round(cam.x, 5), "y": round(cam.y, 5), "zoom": round(cam.zoom, 5)},
        "objects": [_object_json(o) for o in frame.objects],
    }


def _object_json(obj: ObjectTruth) -> dict:
    data = asdict(obj)
    for key in ("x", "y", "rotation"):
        data[key] = round(data[key], 5)
    data["area"] = round(data["area"], 2)
    return data


def _frame_from_json(data: dict) -> FrameTruth:
    return FrameTruth(
        scene=int(data["scene"]),
        camera=CameraState(**data["camera"]),
        objects=tuple(ObjectTruth(**o) for o in data["objects"]),
    )
