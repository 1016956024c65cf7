"""The OpenAI-compatible VLM client against a local chat-completions server that sometimes fails."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from vlm_server import API_KEY, KEY_ENV, ChatServer

from retake.data.vlm import VLMAnswerError, VLMClient, VLMError, VLMRequestError
from retake.data.writers import validate_instruction

MESSAGES = [
    {"role": "system", "content": "Describe the edit."},
    {"role": "user", "content": "Clip A, clip B:"},
]


def _images(seed: int, n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(n)]


def _client(server: ChatServer, **kwargs) -> VLMClient:
    options = {"api_key_env": KEY_ENV, "timeout": 5.0, "max_retries": 4, "backoff_s": 0.001, **kwargs}
    return VLMClient(server.base_url, "test-vlm", **options)


def test_chat_sends_images_as_jpeg_data_urls_and_counts_tokens_and_cost(vlm_server: ChatServer) -> None:
    client = _client(vlm_server, price_prompt_per_1k=2.0, price_completion_per_1k=10.0)
    images = _images(0)
    answer = client.chat(MESSAGES, images)

    body = vlm_server.bodies[0]
    assert body["model"] == "test-vlm"
    assert vlm_server.headers[0]["Authorization"] == f"Bearer {API_KEY}"
    parts = body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "Clip A, clip B:"}
    urls = [p["image_url"]["url"] for p in parts[1:]]
    assert len(urls) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    decoded = cv2.imdecode(
        np.frombuffer(base64.b64decode(urls[0].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR
    )
    assert decoded.shape == (24, 32, 3)
    assert answer.usage.prompt_tokens == 50 + 2 * 85
    assert answer.usage.completion_tokens == len(answer.text.split())
    expected_cost = (answer.usage.prompt_tokens * 2.0 + answer.usage.completion_tokens * 10.0) / 1000
    assert answer.cost == pytest.approx(expected_cost)
    assert client.totals.cost == pytest.approx(expected_cost) and client.totals.requests == 1


def test_retries_429_500_and_garbage_with_backoff_then_answers(vlm_server: ChatServer) -> None:
    vlm_server.script = ["429", "500", "garbage", "no_choices"]
    client = _client(vlm_server, max_retries=4)
    answer = client.chat(MESSAGES, _images(1))
    assert answer.text  # the fifth attempt got through
    assert client.totals.requests == 5 and client.totals.retries == 4


def test_gives_up_after_max_retries_with_a_one_line_error(vlm_server: ChatServer) -> None:
    vlm_server.script = ["500"] * 3
    client = _client(vlm_server, max_retries=2)
    with pytest.raises(VLMRequestError, match="gave up after 3 attempts: HTTP 500"):
        client.chat(MESSAGES, _images(1))
    assert len(vlm_server.bodies) == 3


def test_client_errors_are_not_retried(vlm_server: ChatServer) -> None:
    vlm_server.script = ["401"]
    with pytest.raises(VLMRequestError, match="HTTP 401"):
        _client(vlm_server).chat(MESSAGES, _images(1))
    assert len(vlm_server.bodies) == 1


def test_invalid_answers_are_asked_again_then_become_an_error(vlm_server: ChatServer) -> None:
    vlm_server.script = ["prose"]
    client = _client(vlm_server, max_retries=2)
    answer = client.chat(MESSAGES, _images(2), validate=validate_instruction)
    assert (
        answer.text.split()[0] in {"Zoom", "Move", "Replace", "Add", "Remove"} and client.totals.retries == 1
    )

    vlm_server.script = ["prose"] * 3
    with pytest.raises(VLMAnswerError, match="invalid answer"):
        client.chat(MESSAGES, _images(3), validate=validate_instruction)


def test_a_timeout_is_retried(vlm_server: ChatServer) -> None:
    vlm_server.script, vlm_server.slow_s = ["slow"], 1.5
    client = _client(vlm_server, timeout=0.4, max_retries=1)
    assert client.chat(MESSAGES, _images(4)).text
    assert client.totals.retries == 1


def test_cache_means_a_rerun_never_pays_twice(vlm_server: ChatServer, tmp_path: Path) -> None:
    first = _client(vlm_server, cache_dir=tmp_path, price_prompt_per_1k=1.0)
    paid = first.chat(MESSAGES, _images(5))
    rerun = _client(vlm_server, cache_dir=tmp_path, price_prompt_per_1k=1.0)  # a new process, same cache
    again = rerun.chat(MESSAGES, _images(5))
    assert (again.text, again.usage, again.cost) == (paid.text, paid.usage, paid.cost)
    assert (
        again.cached
        and rerun.totals.requests == 0
        and rerun.totals.cost == 0
        and rerun.totals.cache_hits == 1
    )
    assert len(vlm_server.bodies) == 1

    rerun.chat(MESSAGES, _images(6))  # other clips: a new question
    VLMClient(vlm_server.base_url, "other-model", api_key_env=KEY_ENV, cache_dir=tmp_path).chat(
        MESSAGES, _images(5)
    )
    rerun.chat([MESSAGES[0], {"role": "user", "content": "Another prompt"}], _images(5))
    assert len(vlm_server.bodies) == 4


def test_a_cached_answer_is_served_only_to_the_same_sampling_and_a_validator_that_accepts_it(
    vlm_server: ChatServer, tmp_path: Path
) -> None:
    _client(vlm_server, cache_dir=tmp_path).chat(MESSAGES, _images(7))
    longer = _client(vlm_server, cache_dir=tmp_path, max_tokens=300)  # rerun to mend answers cut short
    assert not longer.chat(MESSAGES, _images(7)).cached and len(vlm_server.bodies) == 2
    assert vlm_server.bodies[-1]["max_tokens"] == 300

    def stricter(text: str) -> str:
        if not text.startswith("Stricter"):
            raise ValueError(f"not stricter: {text!r}")
        return text

    vlm_server.answer = lambda body: "Stricter: zoom in"
    answer = _client(vlm_server, cache_dir=tmp_path).chat(MESSAGES, _images(7), validate=stricter)
    assert (answer.text, answer.cached, len(vlm_server.bodies)) == ("Stricter: zoom in", False, 3)
    again = _client(vlm_server, cache_dir=tmp_path).chat(MESSAGES, _images(7), validate=stricter)
    assert again.cached and again.text == "Stricter: zoom in" and len(vlm_server.bodies) == 3


def test_concurrency_is_capped_and_results_keep_their_order(vlm_server: ChatServer) -> None:
    client = _client(vlm_server, concurrency=2)
    requests = [(MESSAGES, _images(10 + i)) for i in range(6)]
    answers = client.chat_many(requests)
    assert vlm_server.max_in_flight == 2  # used in parallel, never more than allowed
    expected = [_client(vlm_server).chat(m, imgs).text for m, imgs in requests]
    assert [a.text for a in answers] == expected


def test_chat_many_returns_failures_in_place(vlm_server: ChatServer) -> None:
    vlm_server.script = ["500", "500"]
    client = _client(vlm_server, concurrency=1, max_retries=1)
    answers = client.chat_many([(MESSAGES, _images(20)), (MESSAGES, _images(21))])
    assert isinstance(answers[0], VLMRequestError)
    assert "gave up after 2 attempts: HTTP 500" in str(answers[0])  # the first request's own failure
    # the second request, in its own place, got the answer that request gets alone
    assert answers[1].text == _client(vlm_server).chat(MESSAGES, _images(21)).text
    assert len(vlm_server.bodies) == 4  # 2 tries of the first, 1 of the second, 1 check


def test_the_api_key_never_reaches_logs_errors_or_cache(
    vlm_server: ChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(vlm_server, cache_dir=tmp_path, max_retries=1)
    client.chat(MESSAGES, _images(30))
    vlm_server.script = ["500", "500"]
    with pytest.raises(VLMError) as failed:
        client.chat(MESSAGES, _images(31))
    vlm_server.script = ["401"]
    with pytest.raises(VLMError) as refused:
        client.chat(MESSAGES, _images(32))
    texts = [caplog.text, str(failed.value), repr(failed.value), str(refused.value), repr(client.__dict__)]
    texts += [p.read_text() for p in tmp_path.rglob("*.json")]
    assert caplog.text and list(tmp_path.rglob("*.json"))  # there was something to leak into
    assert all(API_KEY not in t for t in texts)


def test_missing_endpoint_or_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETAKE_VLM_BASE_URL", raising=False)
    monkeypatch.delenv("RETAKE_VLM_MODEL", raising=False)
    with pytest.raises(VLMError, match="RETAKE_VLM_BASE_URL"):
        VLMClient(None, "m")
    with pytest.raises(VLMError, match="RETAKE_VLM_MODEL"):
        VLMClient("http://127.0.0.1:9/v1", None)
    monkeypatch.setenv("RETAKE_VLM_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("RETAKE_VLM_MODEL", "env-model")
    client = VLMClient(None, None)
    assert (client.base_url, client.model) == ("http://127.0.0.1:9/v1", "env-model")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timeout": float("nan")}, "timeout must be finite"),
        ({"max_retries": 2.5}, "max_retries must be an integer"),
        ({"concurrency": 0}, "concurrency must be > 0"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"jpeg_quality": 101}, r"jpeg_quality must be in 1\.\.100"),
        ({"model": 3}, "model must be a str"),
    ],
)
def test_vlm_settings_are_checked_by_name(changes: dict, message: str) -> None:
    from retake.data.vlm import VLMConfig

    with pytest.raises(ValueError, match=message):
        VLMConfig(**changes)
