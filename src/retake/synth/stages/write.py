"""Stage `write`: encode every live triplet's source and edited clip as H.264 mp4 and add them, with the row, to
the shard's WebDataset tar. A source clip shared by several triplets is encoded once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from retake import video
from retake.data.records import StageError, error_from_exception
from retake.data.shards import TarSink
from retake.files import json_default
from retake.synth.manifest import triplet_row
from retake.synth.records import SynthMeta, SynthSample

StageResult = tuple[SynthSample, SynthMeta, StageError | None]


class WriteTriplets:
    name = "write"

    def __init__(self, sink: TarSink, *, shard: str, recipe: str, crf: int, preset: str) -> None:
        self.sink = sink
        self.shard = shard
        self.recipe = recipe
        self.crf = crf
        self.preset = preset

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        encoded: dict[int, bytes] = {}  # id of a frames array -> its mp4
        members = []
        try:
            with tempfile.TemporaryDirectory(prefix="retake-synth-") as tmp:
                for triplet in meta.live:
                    clips = (sample.source_of(triplet.index), sample.targets[triplet.index])
                    files = [self.encode(c, meta.fps or 8.0, Path(tmp), encoded) for c in clips]
                    row = triplet_row(sample, meta, triplet, shard=self.shard, recipe=self.recipe)
                    members.append(
                        (
                            row["pair_id"],
                            {
                                "src.mp4": files[0],
                                "tgt.mp4": files[1],
                                "json": json.dumps(row, sort_keys=True, default=json_default).encode(),
                            },
                        )
                    )
        except (video.VideoError, OSError) as exc:
            return sample, meta, error_from_exception(self.name, exc)
        for key, files in members:  # only whole inputs enter the tar
            self.sink.add(key, files)
        return sample, meta, None

    def encode(self, frames: np.ndarray, fps: float, tmp: Path, done: dict[int, bytes]) -> bytes:
        if id(frames) not in done:
            path = tmp / f"clip{len(done)}.mp4"
            video.write(video.Video(frames=frames, fps=fps), path, crf=self.crf, preset=self.preset)
            done[id(frames)] = path.read_bytes()
        return done[id(frames)]
