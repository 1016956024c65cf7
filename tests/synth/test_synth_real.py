"""The InsViE recipe on the real sample clips: man-walking and ballet with their precomputed edited first
frames, propagated by optical flow, give full triplets that training can read; flow propagation beats the
naive baseline (the edited frame held still)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth_helpers import read_triplets

from retake import video
from retake.eval.psnr import psnr
from retake.opticalflow import FlowConfig, video_flow
from retake.synth.image_editors import PrecomputedEditor
from retake.synth.propagate.flow import propagate_flow, repeat_first
from retake.synth.propagate.score import edit_region, score_propagation
from retake.synth.recipes import PropagationConfig, get_recipe, with_overrides
from retake.synth.runner import synthesize
from retake.train.datasets import ClipSpec, CuratedPairs

CLIPS = ("anyv2v_man-walking", "anyv2v_ballet")
SIZE = 128


@pytest.fixture(scope="module")
def dataset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two clips (listed in a .txt) through precomputed + selection none + flow, 9 frames at 128 px."""
    root = tmp_path_factory.mktemp("real")
    listing = root / "inputs.txt"
    listing.write_text("".join(f"{shared_data / 'videos' / name}.mp4\n" for name in CLIPS))
    config = with_overrides(
        get_recipe("insvie"),
        {
            "editor.path": str(shared_data / "edited_first_frames"),
            "selection.name": "none",
            "source.short_side": SIZE,
            "source.clip_frames": 9,
        },
    )
    synthesize(listing, root / "out", config, workers=1, progress=False)
    return root / "out"


def test_real_clips_give_full_triplets(dataset: Path, shared_data: Path) -> None:
    triplets = read_triplets(dataset)
    instructions = sorted(row["instruction"] for row, _, _ in triplets.values())
    assert instructions == [
        "Add a cowboy hat.",
        "Change his clothes to red.",
        "Turn him into an astronaut.",
        "Van gogh style.",
    ]
    for row, source, edited in triplets.values():
        assert row["status"] == "ok" and source.shape == edited.shape == (9, SIZE, SIZE, 3)
        name = Path(row["source_video"]).stem
        original = video.read(shared_data / "videos" / f"{name}.mp4", size=(SIZE, SIZE)).frames[:9]
        assert psnr(original, source) > 27  # the source clip, through H.264
        file = row["instruction"].rstrip(".").lower().replace(" ", "_") + ".png"
        wanted = (
            PrecomputedEditor(shared_data / "edited_first_frames")
            .candidates(original[0], _spec(file), path=Path(row["source_video"]), seed=0)[0]
            .image
        )
        assert psnr(wanted[None], edited[:1]) > 27  # frame 0 is the edited first frame
        assert np.abs(edited[-1].astype(int) - source[-1]).mean() > 8  # ... and the edit lasts


def test_training_reads_the_synth_dataset(dataset: Path) -> None:
    pairs = CuratedPairs(dataset, ClipSpec(frames=9, size=(SIZE, SIZE)))
    assert len(pairs) == 4 and pairs.unlabelled == 0
    sample = pairs.load(0)
    assert sample.source.shape == sample.target.shape == (9, SIZE, SIZE, 3) and sample.instruction


@pytest.mark.parametrize("name", ["add_a_cowboy_hat", "change_his_clothes_to_red"])
def test_flow_propagation_beats_holding_the_edited_frame(shared_data: Path, name: str) -> None:
    source = video.read(shared_data / "videos" / "anyv2v_man-walking.mp4", size=(SIZE, SIZE)).frames[:9]
    edited = (
        PrecomputedEditor(shared_data / "edited_first_frames")
        .candidates(source[0], _spec(f"{name}.png"), path=Path("anyv2v_man-walking.mp4"), seed=0)[0]
        .image
    )
    flow = video_flow(source, FlowConfig())
    region = edit_region(source, edited)
    ours = score_propagation(source, propagate_flow(source, edited, PropagationConfig()).video, region, flow)
    naive = score_propagation(source, repeat_first(source, edited), region, flow)
    own = score_propagation(source, source, region, flow)
    assert ours.warp_error < naive.warp_error - 2
    assert ours.warp_error < 1.1 * own.warp_error  # as consistent over time as the real footage
    assert ours.psnr_outside > naive.psnr_outside + 8 and ours.outside_share > 0.5


def _spec(file: str):
    from retake.synth.image_editors import EditSpec

    return EditSpec("", {"file": file})
