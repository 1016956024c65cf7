"""Stage `write`: encode the two clips of every kept pair as H.264 mp4 and add them, with the pair's JSON
record, to the shard's WebDataset tar. A clip used by two pairs is encoded once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from retake import video
from retake.data.records import STATUS_OK, Meta, Sample, StageResult, error_from_exception
from retake.data.shards import TarSink, pair_row
from retake.files import json_default


class WriteShard:
    name = "write"

    def __init__(self, sink: TarSink, *, shard: str, writer: str, crf: int, preset: str) -> None:
        self.sink = sink
        self.shard = shard
        self.writer = writer
        self.crf = crf
        self.preset = preset

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        encoded: dict[int, bytes] = {}
        members: list[tuple[str, dict[str, bytes]]] = []
        try:
            with tempfile.TemporaryDirectory(prefix="retake-write-") as tmp:
                for pair in meta.pairs:
                    if pair.status != STATUS_OK:
                        continue
                    for clip in (pair.src, pair.tgt):
                        if clip.index not in encoded:
                            encoded[clip.index] = self.encode(sample, clip.index, meta.clip_fps, Path(tmp))
                    record = pair_row(sample, meta, pair, shard=self.shard, writer=self.writer)
                    files = {
                        "src.mp4": encoded[pair.src.index],
                        "tgt.mp4": encoded[pair.tgt.index],
                        "json": json.dumps(record, sort_keys=True, default=json_default).encode(),
                    }
                    members.append((record["pair_id"], files))
        except (video.VideoError, OSError) as exc:
            return sample, meta, error_from_exception(self.name, exc)
        # Only whole videos enter the tar: a failure above leaves no orphan pair of a video marked broken.
        for key, files in members:
            self.sink.add(key, files)
        return sample, meta, None

    def encode(self, sample: Sample, clip_index: int, fps: float, tmp: Path) -> bytes:
        path = tmp / f"clip{clip_index}.mp4"
        # One x264 thread: the worker processes are the parallelism, and on 17-frame clips frame threads only
        # add synchronisation (about 10% more CPU per clip, and slightly larger files).
        clip = video.Video(frames=sample.clips[clip_index], fps=fps)
        video.write(clip, path, crf=self.crf, preset=self.preset, threads=1)
        return path.read_bytes()
