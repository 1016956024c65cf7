"""The paired-data factory on the real sample clips as a user runs it: InsViE propagation by a retake bundle
(`--propagator model`) and ICVE's SFT pairs from mask files, read back as training data with their kinds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from retake import video
from retake.cli import main
from retake.data.shards import read_manifest
from retake.data.vlm import VLMError
from retake.synth.propagate import Request, make_propagator
from retake.synth.recipes import PropagationConfig, fit_default_types, get_recipe, with_overrides
from retake.synth.runner import synthesize
from retake.train.datasets import ClipSpec, CuratedPairs

SIZE = 32


def test_the_model_propagator_takes_the_factorys_63_bit_seeds(tiny_bundle: Path) -> None:
    rng = np.random.default_rng(0)
    source = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    propagator = make_propagator(PropagationConfig(name="model", path=str(tiny_bundle), steps=1))
    big = 6366509311103888040  # a triplet seed as the factory derives them (stable 63-bit hashes)
    clip = propagator.propagate(Request(source, source[0], "add a hat", 8.0, seed=big))
    assert clip.shape == source.shape
    folded = propagator.propagate(Request(source, source[0], "add a hat", 8.0, seed=big % 2**32))
    assert np.array_equal(clip, folded)
    # the seed is used (folded, not dropped): another seed draws other noise
    other = propagator.propagate(Request(source, source[0], "add a hat", 8.0, seed=big % 2**32 + 1))
    assert not np.array_equal(clip[1:], other[1:])


def test_real_clips_propagate_through_a_bundle(shared_data: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    config = with_overrides(
        get_recipe("insvie"),
        {
            "editor.path": str(shared_data / "edited_first_frames"),
            "selection.name": "none",
            "propagation.name": "model",
            "propagation.path": str(tiny_bundle),
            "propagation.steps": 1,
            "source.short_side": SIZE,
            "source.clip_frames": 5,
        },
    )
    source = shared_data / "videos" / "anyv2v_ballet.mp4"
    result = synthesize(source, tmp_path / "out", config, workers=1, progress=False)
    rows = read_manifest(tmp_path / "out").to_pylist()
    assert [r["instruction"] for r in rows] == ["Van gogh style."]  # propagated, whatever filters then say
    assert rows[0]["status"] == "ok" or rows[0]["stage"] == "quality_filter", rows
    assert sum(v for k, v in result.stats.items() if k.endswith("_error")) == 0


def _masks(root: Path, shared_data: Path) -> Path:
    """A still mask (portrait clip, PNG) and a moving one (mask video at the clip's own rate and size)."""
    (root / "icve_glasses").mkdir(parents=True)
    face = np.zeros((832, 480), np.uint8)
    cv2.ellipse(face, (240, 230), (100, 110), 0, 0, 360, 255, -1)
    cv2.imwrite(str(root / "icve_glasses" / "face.png"), face)
    (root / "anyv2v_man-walking").mkdir()
    info = video.probe(shared_data / "videos" / "anyv2v_man-walking.mp4")
    frames = np.zeros((info.frame_count, info.height, info.width, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 150:400, 100 + 10 * i : 228 + 10 * i] = 255
    video.write(video.Video(frames, info.fps), root / "anyv2v_man-walking" / "man.mp4")
    return root


def test_real_sft_pairs_train_as_their_edit_kinds(shared_data: Path, tmp_path: Path) -> None:
    listing = tmp_path / "inputs.txt"
    names = ("icve_glasses", "anyv2v_man-walking")
    listing.write_text("".join(f"{shared_data / 'videos' / n}.mp4\n" for n in names))
    config = with_overrides(
        get_recipe("icve-sft"),
        {
            "masks.name": "files",
            "masks.path": str(_masks(tmp_path / "masks", shared_data)),
            "inpaint.name": "opencv",
            "pairs.types": ["remove", "add"],
            "pairs.proportions": [1.0, 1.0],
            "pairs.min_sharpness_ratio": 0.0,  # OpenCV's fills are blurry; the kinds are what is tested
            "source.short_side": SIZE,
            "source.clip_frames": 9,
        },
    )
    synthesize(listing, tmp_path / "out", config, workers=1, progress=False)
    rows = [r for r in read_manifest(tmp_path / "out").to_pylist() if r["status"] == "ok"]
    assert sorted(r["edit_type"] for r in rows) == ["add", "add", "remove", "remove"]
    pairs = CuratedPairs(tmp_path / "out", ClipSpec(frames=9, size=(SIZE, SIZE)))
    assert sorted(pairs.kinds()) == ["add", "add", "remove", "remove"]
    by_kind = dict(zip(pairs.ids(), pairs.kinds(), strict=True))
    assert all(by_kind[r["pair_id"]] == r["edit_type"] for r in rows)
    assert pairs.load(0).source.shape == (9, SIZE, SIZE, 3)


def test_a_first_run_without_a_vlm_is_told_how_to_do_without(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RETAKE_VLM_BASE_URL", raising=False)
    config = with_overrides(get_recipe("insvie"), {"editor.path": str(shared_data / "edited_first_frames")})
    source = shared_data / "videos" / "anyv2v_ballet.mp4"
    with pytest.raises(VLMError, match=r"--vlm-base-url .*--selection none"):
        synthesize(source, tmp_path / "out", config, workers=1, progress=False)
    sft = with_overrides(
        get_recipe("icve-sft"),
        {
            "masks.path": str(tmp_path),
            "pairs.judge": "vlm",
            "pairs.types": ["remove"],
            "pairs.proportions": [1.0],
        },
    )
    with pytest.raises(VLMError, match=r"--set pairs.judge=none"):
        synthesize(source, tmp_path / "sft", sft, workers=1, progress=False)


def test_the_opencv_inpainter_names_the_option_that_drops_replace(shared_data: Path, tmp_path: Path) -> None:
    config = with_overrides(get_recipe("icve-sft"), {"masks.path": str(tmp_path), "inpaint.name": "opencv"})
    with pytest.raises(ValueError, match=r"--types remove,add"):
        synthesize(shared_data / "videos" / "anyv2v_ballet.mp4", tmp_path / "out", config, progress=False)


def test_the_readme_sft_command_makes_remove_and_add_pairs_with_opencv(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    masks = _masks(tmp_path / "masks", shared_data)
    source = shared_data / "videos" / "icve_glasses.mp4"
    out = tmp_path / "out"
    size = ["--short-side", str(SIZE), "--frames", "9", "--no-progress"]
    main(["synth", str(source), str(out), "--recipe", "icve-sft", "--masks-dir", str(masks), *size])
    assert "making remove and add pairs" in capsys.readouterr().err  # the console writes to stderr
    rows = [r for r in read_manifest(out).to_pylist() if r["status"] == "ok"]
    assert sorted(r["edit_type"] for r in rows) == ["add", "remove"]


def test_only_a_default_mix_with_the_opencv_inpainter_is_fitted() -> None:
    config, note = fit_default_types(get_recipe("icve-sft"))
    assert config.pairs.types == ("remove", "add") and config.pairs.proportions == (1.0, 1.0) and note
    vace = with_overrides(get_recipe("icve-sft"), {"inpaint.name": "wan-vace"})
    assert fit_default_types(vace) == (vace, None)
    assert fit_default_types(get_recipe("insvie")) == (get_recipe("insvie"), None)
