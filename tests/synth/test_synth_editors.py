"""First-frame editors (precomputed folder, a diffusers InstructPix2Pix pipeline, the Flatland oracle) and
selection (VLM with guidelines, the oracle judge, none)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_diffusers import save_instruct_pix2pix
from vlm_server import API_KEY, KEY_ENV, ChatServer

from retake.data.shards import read_manifest
from retake.data.vlm import VLMClient, VLMError
from retake.flatland.edits import Edit
from retake.synth.flatland import read_source
from retake.synth.image_editors import (
    DiffusersImageEditor,
    EditSpec,
    FlatlandEditor,
    PrecomputedEditor,
    instruction_from_name,
)
from retake.synth.recipes import EditorConfig, SelectionConfig, with_overrides
from retake.synth.records import Candidate
from retake.synth.runner import synthesize
from retake.synth.selection import FlatlandSelector, KeepStrongest, VLMSelector, parse_selection
from retake.video import read


def test_precomputed_edits_come_from_the_folder_layout(shared_data: Path) -> None:
    editor = PrecomputedEditor(shared_data / "edited_first_frames")
    specs = editor.edits(Path("videos/anyv2v_man-walking.mp4"), "anyv2v_man-walking.mp4")
    assert [s.instruction for s in specs] == [
        "Add a cowboy hat.",
        "Change his clothes to red.",
        "Turn him into an astronaut.",
    ]
    frame = read(shared_data / "videos" / "anyv2v_man-walking.mp4", size=(96, 96), max_frames=1).frames[0]
    (candidate,) = editor.candidates(frame, specs[0], path=Path("anyv2v_man-walking.mp4"), seed=0)
    assert candidate.image.shape == (96, 96, 3) and candidate.strength is None
    assert np.abs(candidate.image.astype(int) - frame).mean() > 5  # an edit, at the frame's size
    assert editor.edits(Path("other.mp4"), "other.mp4") == []
    with pytest.raises(FileNotFoundError, match="nope"):
        PrecomputedEditor(shared_data / "nope")


def test_instruction_names() -> None:
    assert instruction_from_name("add_a_cowboy_hat") == "Add a cowboy hat."
    assert instruction_from_name("what__now?") == "What now?"
    with pytest.raises(ValueError, match="'__'"):
        instruction_from_name("__")


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_instruct_pix2pix(tmp_path_factory.mktemp("pix2pix") / "pipeline")


def test_a_diffusers_editor_gives_one_candidate_per_strength(pix2pix: Path) -> None:
    config = EditorConfig(name="diffusers", path=str(pix2pix), strengths=(1.5, 6.0), steps=2)
    editor = DiffusersImageEditor(config)
    picture = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    spec = EditSpec("add a hat")
    first = editor.candidates(picture, spec, path=Path("x.mp4"), seed=3)
    again = editor.candidates(picture, spec, path=Path("x.mp4"), seed=3)
    assert [c.strength for c in first] == [1.5, 6.0]
    assert all(c.image.shape == (40, 48, 3) and c.image.dtype == np.uint8 for c in first)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))  # seeded
    assert np.abs(first[0].image.astype(int) - first[1].image).mean() > 0.5  # the strength matters


def test_the_flatland_editor_blends_the_oracle_edit(flatland_sources: Path) -> None:
    path = sorted(flatland_sources.glob("*.mp4"))[1]  # a remove edit
    frame = read(path, max_frames=1).frames[0]
    editor = FlatlandEditor(EditorConfig(name="flatland", strengths=(2.0, 4.0)))
    (spec,) = editor.edits(path, path.name)
    assert spec.edit_type == "remove" and spec.instruction == read_source(path).edits[0][1]
    half, full = editor.candidates(frame, spec, path=path, seed=0)
    change_half = half.image.astype(float) - frame
    change_full = full.image.astype(float) - frame
    assert np.abs(change_full).max() > 50
    assert (
        np.abs(change_half - change_full / 2).mean() < 0.05
    )  # strength 2 of 4: half the edit (up to clipping)


def _candidates(flatland_sources: Path) -> tuple[np.ndarray, list[Candidate], dict]:
    path = sorted(flatland_sources.glob("*.mp4"))[1]
    frame = read(path, max_frames=1).frames[0]
    editor = FlatlandEditor(EditorConfig(name="flatland", strengths=(1.0, 3.0, 10.0)))
    (spec,) = editor.edits(path, path.name)
    return frame, editor.candidates(frame, spec, path=path, seed=0), spec.edit


def test_the_oracle_selector_keeps_the_passing_edit_and_rejects_wrong_ones(flatland_sources: Path) -> None:
    frame, candidates, edit = _candidates(flatland_sources)
    picked = FlatlandSelector().select(frame, candidates, "remove it", edit)
    assert picked.index == 2 and picked.scores[0] == 0.0  # a 10% blend does not remove anything
    wrong = Edit.from_json(edit)
    other = {**edit, "target_colour": next(c for c in ("red", "blue", "green") if c != wrong.target_colour)}
    rejected = FlatlandSelector().select(frame, candidates[:1], "remove it", other)
    assert rejected.index is None and rejected.scores == (0.0,)


def test_keep_strongest_takes_the_highest_strength() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    picked = KeepStrongest().select(
        image, [Candidate(image, 3.0), Candidate(image, 9.0), Candidate(image, 5.0)], "x", None
    )
    assert picked.index == 1


def test_selection_answers_are_parsed_strictly() -> None:
    assert parse_selection('Sure! ```{"scores": [2, 8.5], "best": 2, "reason": "ok"}```', 2) == {
        "scores": [2.0, 8.5],
        "best": 2,
        "reason": "ok",
    }
    for bad, why in (
        ('{"scores": [2], "best": 1}', r"need 2 scores, got \[2\]"),
        ('{"scores": [2, 11], "best": 1}', "scores must be numbers in 0-10, got 11"),
        ('{"scores": [2, 3], "best": 3}', "best must be an integer in 0-2, got 3"),
        ('{"scores": [2, 3], "best": 1.5}', "best must be an integer in 0-2, got 1.5"),
        ("no", "no JSON object in the answer: 'no'"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_selection(bad, 2)


def test_the_vlm_selector_follows_the_guidelines_through_the_client(
    flatland_sources: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    answers = iter(
        [
            '{"scores": [1, 4, 9], "best": 3, "reason": "fully removed"}',
            '{"scores": [1, 4, 5], "best": 3, "reason": "weak"}',
            '{"scores": [1, 2, 3], "best": 0, "reason": "none works"}',
        ]
    )
    server = ChatServer(api_key=API_KEY, answer=lambda body: next(answers)).start()
    try:
        server.script = ["garbage"]  # a broken answer first: the client asks again
        client = VLMClient(
            server.base_url, "judge-model", api_key_env=KEY_ENV, backoff_s=0.0, cache_dir=tmp_path
        )
        selector = VLMSelector(client, SelectionConfig(min_score=6))
        frame, candidates, _ = _candidates(flatland_sources)
        kept = selector.select(frame, candidates, "Remove the red star.", None)
        assert kept.index == 2 and kept.scores == (1.0, 4.0, 9.0)
        body = server.bodies[-1]
        assert "guidelines" in body["messages"][0]["content"] and "Remove the red star." in json.dumps(body)
        images = [p for p in body["messages"][1]["content"] if p.get("type") == "image_url"]
        assert len(images) == 4  # the original first, then the three candidates
        frame2 = frame.copy()
        frame2[0, 0] = 0  # another request (not the cached one)
        assert selector.select(frame2, candidates, "Remove the red star.", None).index is None  # 5 < min 6
        frame2[0, 1] = 0
        assert selector.select(frame2, candidates, "Remove the red star.", None).index is None  # best 0
        server.script = ["500"] * 10
        frame2[0, 2] = 0
        with pytest.raises(VLMError):
            VLMSelector(
                VLMClient(server.base_url, "m", api_key_env=KEY_ENV, max_retries=1, backoff_s=0.0)
            ).select(frame2, candidates, "Remove the red star.", None)
    finally:
        server.stop()


def test_the_factory_selects_with_a_vlm_and_counts_what_it_paid(
    flatland_sources: Path, insvie_oracle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)

    inputs = sorted(flatland_sources.glob("*.mp4"))[:6]  # one of each edit kind
    rejected = read_source(inputs[0]).edits[0][1]

    def answer(body: dict) -> str:  # keeps the 2nd of 3 candidates, except for one instruction
        best = 0 if rejected in json.dumps(body) else 2
        return json.dumps({"scores": [3, 8, 9], "best": best, "reason": "r"})

    server = ChatServer(api_key=API_KEY, answer=answer).start()
    try:
        changes = {
            "selection.name": "vlm",
            "vlm.base_url": server.base_url,
            "vlm.model": "judge",
            "vlm.api_key_env": KEY_ENV,
            "vlm.price_prompt_per_1k": 1.0,
        }
        config = with_overrides(insvie_oracle, changes)
        listing = tmp_path / "inputs.txt"
        listing.write_text("".join(f"{p}\n" for p in inputs))
        result = synthesize(listing, tmp_path / "out", config, workers=1, progress=False)
    finally:
        server.stop()
    rows = read_manifest(tmp_path / "out").to_pylist()
    kept = [r for r in rows if r["status"] == "ok"]
    assert [(r["stage"], r["reason"]) for r in rows if r["status"] != "ok"] == [("select", "all_rejected")]
    assert {r["strength"] for r in kept} == {7.5} and all(r["scores"] == [3.0, 8.0, 9.0] for r in kept)
    assert all(r["prompt_tokens"] == 50 + 85 * 4 for r in rows)  # the frame and its three candidates
    assert result.stats["vlm_spend"]["requests"] == 6 and result.stats["vlm_spend"]["cost"] > 0
    assert (tmp_path / "out" / "vlm_cache").is_dir()
