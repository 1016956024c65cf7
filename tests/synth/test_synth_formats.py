"""`retake synth` (InsViE recipe, precomputed first-frame edits, flow propagation) on the kinds of files users
bring: a phone video shown rotated, Matroska and WebM files, one-frame files, and ones that cannot be used."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from synth_helpers import read_triplets

from retake import video
from retake.data.shards import read_manifest
from retake.synth.recipes import get_recipe, with_overrides
from retake.synth.runner import synthesize

SIZE = 48  # output short side


def encode(path: Path, frames: np.ndarray, *, rotation: int = 0, codec: str = "libx264") -> Path:
    """Frames (F, H, W, 3) at 25 fps, shown turned `rotation` degrees clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def sliding(count: int) -> np.ndarray:
    """(count, 64, 96, 3): a smooth texture sliding 2 px a frame, a red block at the stored top-left."""
    rng = np.random.default_rng(0)
    base = np.repeat(np.repeat(rng.integers(30, 220, (8, 12, 3), dtype=np.uint8), 8, 0), 8, 1)
    frames = np.stack([np.roll(base, 2 * i, axis=1) for i in range(count)])
    frames[:, :16, :16] = (255, 0, 0)
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(input folder, dataset folder): each input's edit is its displayed first frame with green inverted."""
    root = tmp_path_factory.mktemp("formats")
    inputs, edits = root / "in", root / "edits"
    inputs.mkdir()
    frames = sliding(12)
    encode(inputs / "phone.mp4", frames, rotation=90)
    encode(inputs / "web.webm", frames, codec="libvpx-vp9")
    encode(inputs / "one frame.mkv", frames[:1])
    (inputs / "notes.mp4").write_text("not a video\n")
    for path in inputs.iterdir():
        if path.name != "notes.mp4":
            first = video.read(path, max_frames=1).frames[0].copy()  # as a player shows it
            first[..., 1] = 255 - first[..., 1]
            (edits / path.stem).mkdir(parents=True)
            Image.fromarray(first).save(edits / path.stem / "invert_the_green.png")
    config = with_overrides(
        get_recipe("insvie"),
        {
            "editor.path": str(edits),
            "selection.name": "none",
            "propagation.name": "flow",
            "source.clip_frames": 5,
            "source.short_side": SIZE,
            "source.target_fps": 10.0,  # resampled on read
            "source.min_sharpness": 0.0,
            "quality.min_sharpness_ratio": 0.0,
        },
    )
    synthesize(inputs, root / "out", config, workers=1, progress=False)
    return inputs, root / "out"


def test_every_input_gets_a_row_that_says_what_happened(dataset) -> None:
    inputs, out = dataset
    rows = {r["source_video"]: r for r in read_manifest(out).to_pylist()}
    assert (rows["phone.mp4"]["status"], rows["web.webm"]["status"]) == ("ok", "ok")
    # A one-frame mkv resampled to 10 fps is its one frame (it used to read as none, an uncaught error).
    one = rows["one frame.mkv"]
    assert (one["status"], one["reason"], one["detail"]) == ("dropped", "too_short", "1 frames (4k+1) < 5")
    assert rows["notes.mp4"]["status"] == "error" and rows["notes.mp4"]["detail"].startswith(
        f"{inputs / 'notes.mp4'}: not a readable media file"
    )


def test_a_rotated_video_gives_an_upright_triplet_matching_its_edit(dataset) -> None:
    inputs, out = dataset
    triplets = {row["source_video"]: (row, src, edited) for row, src, edited in read_triplets(out).values()}
    row, source, edited = triplets["phone.mp4"]
    assert source.shape == edited.shape == (5, 72, SIZE, 3) and row["fps"] == 10.0  # portrait, as shown
    expected = video.read(inputs / "phone.mp4", fps=10, size=(72, SIZE)).frames[:5]
    assert np.abs(source.astype(float) - expected).mean() < 6
    assert source[0, :4, -4:, 0].min() > 180  # the stored top-left block, turned to the top-right
    assert edited[0, ..., 1].astype(float).mean() == pytest.approx(255 - source[0, ..., 1].mean(), abs=12)
