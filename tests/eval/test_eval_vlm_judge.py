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
from retake.eval.vlm_judge import JudgeConfig, VLMJudge, parse_judgement

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
    """Scores that reveal what the judge sent: instruction 5 if the prompt names it, quality = image count."""
    text = body["messages"][-1]["content"][0]["text"]
    images = len(body["messages"][-1]["content"]) - 1
    follows = 5 if '"make the sky purple"' in text else 1
    scores = f'{{"instruction": {follows}, "preservation": 4, "quality": {images}, "reason": "ok"}}'
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
    assert (verdict.instruction, verdict.preservation, verdict.quality) == (5, 4, 4)
    assert verdict.overall == pytest.approx(13 / 3) and verdict.reason == "ok" and not verdict.cached
    parts = server.bodies[0]["messages"][-1]["content"]
    images = [decode(p["image_url"]["url"]) for p in parts[1:]]
    assert [im.shape for im in images] == [(24, 32, 3)] * 4  # 2 + 2 frames, longer side 32
    # Source frames 0 and 8 come first, then the edited (reversed) clip's frames 0 and 8, i.e. source 8 and 0.
    colours = [image[..., ::-1].reshape(-1, 3).mean(0) for image in images]  # decoded as BGR
    np.testing.assert_allclose(colours, clip[[0, 8, 8, 0], 0, 0], atol=3)


def test_unparsable_answers_are_asked_again(server, clip):
    server.script = ["prose"]
    judge = make_judge(server)
    assert judge.judge(clip, clip, "make the sky purple").instruction == 5
    assert judge.client.totals.retries == 1


def test_a_judge_that_never_answers_properly_raises(server, clip):
    server.script = ["prose"] * 3
    with pytest.raises(VLMAnswerError, match="invalid answer"):
        make_judge(server).judge(clip, clip, "make the sky purple")


def test_cached_judgements_cost_no_request(server, clip, tmp_path):
    first = make_judge(server, cache_dir=tmp_path).judge(clip, clip, "make the sky purple")
    again = make_judge(server, cache_dir=tmp_path).judge(clip, clip, "make the sky purple")
    assert len(server.bodies) == 1 and again.cached and again.instruction == first.instruction


def test_judge_many_keeps_order_and_reports_failures(server, clip):
    server.script = ["401"]  # the first request sent fails for good
    results = make_judge(server, concurrency=1).judge_many(
        [(clip, clip, "make the sky purple"), (clip, clip, "add a boat"), (clip[:1], clip[:1], "add a boat")]
    )
    assert isinstance(results[0], VLMError)
    assert results[1].instruction == 1 and results[2].quality == 2  # one frame each: 2 images


def test_evaluate_edit_adds_the_judge_scores(server, clip):
    results = evaluate_edit(clip, clip, instruction="make the sky purple", judge=make_judge(server))
    assert results["vlm_instruction"] == 5.0 and results["vlm_overall"] == pytest.approx(13 / 3)
    with pytest.raises(ValueError, match="instruction"):
        evaluate_edit(clip, clip, judge=make_judge(server))


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("I think it is fine.", "no JSON object"),
        ('{"instruction": 5, "preservation": 4}', "'quality' must be an integer"),
        ('{"instruction": 6, "preservation": 4, "quality": 3}', "in 1-5"),
        ('{"instruction": 4.5, "preservation": 4, "quality": 3}', "integer"),
        ('{"instruction": true, "preservation": 4, "quality": 3}', "integer"),
        ("{not json}", "not valid JSON"),
    ],
)
def test_parse_judgement_rejects_bad_answers(answer, problem):
    with pytest.raises(ValueError, match=problem):
        parse_judgement(answer)


def test_parse_judgement_accepts_whole_floats_and_fenced_json():
    parsed = parse_judgement('```json\n{"instruction": 4.0, "preservation": 2, "quality": 5}\n```')
    assert parsed == {"instruction": 4, "preservation": 2, "quality": 5, "reason": ""}
    assert json.loads(json.dumps(parsed)) == parsed


def test_bad_arguments_are_rejected(server, clip):
    with pytest.raises(ValueError, match="instruction"):
        make_judge(server).judge(clip, clip, "  ")
    with pytest.raises(ValueError, match="frames"):
        JudgeConfig(frames=0)
