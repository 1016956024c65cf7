"""The VLM judge against the local chat-completions test server of tests/data (scripted answers)."""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from retake.data.vlm import VLMAnswerError, VLMClient, VLMError
from retake.eval.metrics import evaluate_edit
from retake.eval.vlm_judge import (
    PROMPT_HASH,
    SYSTEM_PROMPT,
    USER_PROMPT,
    JudgeConfig,
    VLMJudge,
    parse_judgement,
)

KEY_ENV, API_KEY = "RETAKE_TEST_JUDGE_KEY", "sk-judge-test"


def _load_chat_server():
    path = Path(__file__).resolve().parents[1] / "data" / "vlm_server.py"
    if not path.is_file():
        pytest.skip(f"the test chat server {path} is missing")
    spec = importlib.util.spec_from_file_location("retake_test_vlm_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ChatServer


def scripted_answer(body: dict) -> str:
    """Scores that reveal what the judge sent: instruction following 3 if the prompt names the instruction
    (else 0), edit quality = images per video."""
    text = body["messages"][-1]["content"][0]["text"]
    per_video = (len(body["messages"][-1]["content"]) - 1) // 2
    follows = 3 if '"make the sky purple"' in text else 0
    scores = (
        f'{{"instruction_following": {follows}, "edit_quality": {per_video}, "background_consistency": 1, '
        '"reason": "ok"}'
    )
    return f"Sure! ```json\n{scores}\n```"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    chat_server = _load_chat_server()(api_key=API_KEY, answer=scripted_answer).start()
    yield chat_server
    chat_server.stop()


def make_judge(server, frames: int = 2, **client_options) -> VLMJudge:
    options = {"api_key_env": KEY_ENV, "timeout": 5.0, "max_retries": 2, "backoff_s": 0.001, **client_options}
    return VLMJudge(
        VLMClient(server.base_url, "judge-vlm", **options), JudgeConfig(frames=frames, max_side=32)
    )


@pytest.fixture
def clip() -> np.ndarray:
    """9 frames of 48x64, each one flat colour, so a frame is recognisable after JPEG: frame t = (25t,
    200-20t, 90)."""
    colours = np.array([[25 * t, 200 - 20 * t, 90] for t in range(9)], np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (9, 48, 64, 3)).copy()


def decode(url: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def test_judge_sends_source_then_edited_frames_and_parses_the_scores(server, clip):
    verdict = make_judge(server).judge(clip, clip[::-1].copy(), "make the sky purple")
    assert (verdict.instruction, verdict.quality, verdict.preservation) == (3, 2, 1)
    assert verdict.total == 6 and verdict.overall == pytest.approx(2.0)
    assert verdict.reason == "ok" and not verdict.cached
    parts = server.bodies[0]["messages"][-1]["content"]
    images = [decode(p["image_url"]["url"]) for p in parts[1:]]
    assert [im.shape for im in images] == [(24, 32, 3)] * 4  # 2 + 2 frames, longer side 32
    # Source frames 0 and 8 come first, then the edited (reversed) clip's frames 0 and 8, i.e. source 8 and 0.
    colours = [image[..., ::-1].reshape(-1, 3).mean(0) for image in images]  # decoded as BGR
    np.testing.assert_allclose(colours, clip[[0, 8, 8, 0], 0, 0], atol=3)


def test_the_prompt_is_the_0_to_3_editverse_rubric_and_is_recorded_with_every_score(server, clip):
    judge = make_judge(server)
    verdict = judge.judge(clip, clip, "make the sky purple")
    system, user = server.bodies[0]["messages"]
    assert system["content"] == SYSTEM_PROMPT
    assert user["content"][0]["text"] == USER_PROMPT.format(count=2, instruction="make the sky purple")
    for criterion in ("instruction_following", "edit_quality", "background_consistency"):
        assert f'"{criterion}": <0-3>' in USER_PROMPT
    assert "0 (worst) to 3 (best)" in USER_PROMPT and "1-5" not in USER_PROMPT
    assert (verdict.model, verdict.prompt_hash) == ("judge-vlm", PROMPT_HASH)
    described = judge.describe()
    assert described["model"] == "judge-vlm" and described["prompt_hash"] == PROMPT_HASH
    assert described["user_prompt"] == USER_PROMPT and described["system_prompt"] == SYSTEM_PROMPT
    assert verdict.as_metrics() == {
        "vlm_instruction": 3.0,
        "vlm_quality": 2.0,
        "vlm_preservation": 1.0,
        "vlm_overall": 2.0,
        "vlm_total": 6.0,
    }


def test_unparsable_answers_are_asked_again(server, clip):
    server.script = ["prose"]
    judge = make_judge(server)
    assert judge.judge(clip, clip, "make the sky purple").instruction == 3
    assert judge.client.totals.retries == 1


def test_a_judge_that_never_answers_properly_raises(server, clip):
    server.script = ["prose"] * 3
    with pytest.raises(VLMAnswerError, match="invalid answer"):
        make_judge(server).judge(clip, clip, "make the sky purple")


def test_cached_judgements_cost_no_request(server, clip, tmp_path):
    first = make_judge(server, cache_dir=tmp_path).judge(clip, clip, "make the sky purple")
    again = make_judge(server, cache_dir=tmp_path).judge(clip, clip, "make the sky purple")
    assert len(server.bodies) == 1 and again.cached and again.instruction == first.instruction
    assert again.prompt_hash == PROMPT_HASH


def test_judge_many_keeps_order_and_reports_failures(server, clip):
    server.script = ["401"]  # the first request sent fails for good
    results = make_judge(server, concurrency=1).judge_many(
        [(clip, clip, "make the sky purple"), (clip, clip, "add a boat"), (clip[:1], clip[:1], "add a boat")]
    )
    assert isinstance(results[0], VLMError)
    assert results[1].instruction == 0 and results[2].quality == 1  # one frame from each video


def test_evaluate_edit_adds_the_judge_scores(server, clip):
    results = evaluate_edit(clip, clip, instruction="make the sky purple", judge=make_judge(server))
    assert results["vlm_instruction"] == 3.0 and results["vlm_overall"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="instruction"):
        evaluate_edit(clip, clip, judge=make_judge(server))


def _answer(following, quality=2, consistency=1) -> str:
    return json.dumps(
        {"instruction_following": following, "edit_quality": quality, "background_consistency": consistency}
    )


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("I think it is fine.", "no JSON object"),
        ('{"instruction_following": 3, "edit_quality": 2}', "'background_consistency' must be an integer"),
        (_answer(4), "in 0-3"),
        (_answer(-1), "in 0-3"),
        (_answer(2.5), "integer"),
        (_answer(True), "integer"),
        ('{"instruction": 3, "preservation": 2, "quality": 1}', "'instruction_following' must be an integer"),
        ("{not json}", "not valid JSON"),
    ],
)
def test_parse_judgement_rejects_bad_answers(answer, problem):
    with pytest.raises(ValueError, match=problem):
        parse_judgement(answer)


def test_parse_judgement_accepts_zero_whole_floats_and_fenced_json():
    parsed = parse_judgement(f"```json\n{_answer(0, 3.0, 2)}\n```")
    assert parsed == {"instruction": 0, "quality": 3, "preservation": 2, "reason": ""}
    assert json.loads(json.dumps(parsed)) == parsed


def test_bad_arguments_are_rejected(server, clip):
    with pytest.raises(ValueError, match="instruction"):
        make_judge(server).judge(clip, clip, "  ")
    with pytest.raises(ValueError, match="frames"):
        JudgeConfig(frames=0)
