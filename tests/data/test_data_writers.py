"""Instruction writers inside the pipeline: the VLM writer against the local server, and `none`."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_synth import write_video
from vlm_server import ANSWERS, KEY_ENV, ChatServer

from retake.data.recipes import get_recipe
from retake.data.runner import curate
from retake.data.shards import read_manifest
from retake.data.vlm import VLMConfig, VLMError
from retake.data.writers import make_writer

PHOTOMETRIC = "Increase the brightness of the shot."


def _answer(body: dict) -> str:
    """Deterministic per request; one answer in six is a trivial (photometric) one."""
    digest = hashlib.sha256(json.dumps(body["messages"]).encode()).digest()
    options = (*ANSWERS, PHOTOMETRIC)
    return options[digest[0] % len(options)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vlm_inputs")
    for i in range(3):
        write_video(folder / f"v{i}.mp4", [(44, 2), (44, 3)], seed=10 + i)
    return folder


def _config(server: ChatServer, cache: Path):
    vlm = VLMConfig(
        base_url=server.base_url, model="test-vlm", api_key_env=KEY_ENV, backoff_s=0.001, max_retries=3
    )
    vlm = VLMConfig(**{**vlm.__dict__, "cache_dir": str(cache), "price_prompt_per_1k": 1.0})
    return get_recipe("icve-pretrain").replace(
        clip_frames=5, output_short_side=32, writer="vlm", vlm=vlm, vlm_frames_per_clip=3, verb_mode="off"
    )


def test_vlm_writer_labels_pairs_filters_trivial_ones_and_reruns_for_free(
    vlm_server: ChatServer, videos: Path, tmp_path: Path
) -> None:
    vlm_server.answer = _answer
    vlm_server.script = ["429", "500", "garbage", "prose"]  # transient trouble on the first requests
    config = _config(vlm_server, tmp_path / "cache")
    result = curate(videos, tmp_path / "run1", config, workers=1, progress=False)
    rows = read_manifest(tmp_path / "run1").to_pylist()

    assert len(rows) == 12 and {r["writer"] for r in rows} == {"vlm"}
    for row in rows:
        if row["instruction"] == PHOTOMETRIC:
            assert (row["status"], row["stage"], row["reason"]) == (
                "dropped",
                "trivial_filter",
                "photometric",
            )
        else:
            assert row["status"] == "ok" and row["instruction"] in ANSWERS
        assert row["prompt_tokens"] == 50 + 85 * 6 and row["cost"] == pytest.approx(
            row["prompt_tokens"] / 1000
        )
    # Each request shows 3 frames of each clip, at the clips' output size, in order A then B.
    content = vlm_server.bodies[-1]["messages"][1]["content"]
    assert [p["type"] for p in content] == ["text", *["image_url"] * 3, "text", *["image_url"] * 3, "text"]
    jpeg = base64.b64decode(content[1]["image_url"]["url"].split(",", 1)[1])
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (32, 48, 3)
    spend = result.stats["vlm_spend"]
    assert spend["requests"] == 12 + 4 and spend["retries"] == 4 and spend["cache_hits"] == 0

    asked = len(vlm_server.bodies)
    again = curate(videos, tmp_path / "run2", config, workers=1, progress=False)
    assert (
        len(vlm_server.bodies) == asked and again.stats["vlm_spend"]["cache_hits"] == 12
    )  # never pays twice
    assert (
        read_manifest(tmp_path / "run2")
        .drop(["shard"])
        .equals(read_manifest(tmp_path / "run1").drop(["shard"]))
    )


def test_pairs_the_vlm_cannot_label_become_error_rows(
    vlm_server: ChatServer, videos: Path, tmp_path: Path
) -> None:
    vlm_server.script = ["prose"] * 4  # the first pair: every attempt is no instruction
    config = _config(vlm_server, tmp_path / "cache")
    config = config.replace(vlm=VLMConfig(**{**config.vlm.__dict__, "concurrency": 1}))  # one at a time
    curate(videos / "v0.mp4", tmp_path / "out", config, workers=1, progress=False)
    rows = read_manifest(tmp_path / "out").to_pylist()
    failed = [r for r in rows if r["status"] == "error"]
    assert [(r["stage"], r["reason"]) for r in failed] == [("instruct", "vlm_failed")]
    assert "gave up after 4 attempts: invalid answer" in failed[0]["detail"]  # why, for the manifest reader
    assert sum(r["status"] != "error" for r in rows) == 3  # its siblings went on


def test_a_vlm_run_without_an_endpoint_fails_before_any_work(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RETAKE_VLM_BASE_URL", raising=False)
    with pytest.raises(VLMError, match="no VLM base URL"):
        curate(videos, tmp_path / "out", get_recipe("icve-pretrain").replace(writer="vlm"), progress=False)
    assert not (tmp_path / "out").exists()  # OUT not claimed: a fixed rerun may use it


def test_none_writer_leaves_instructions_empty_and_unknown_writers_are_refused() -> None:
    writer = make_writer("none")
    assert writer.write(None, [1, 2]) == [writer.write(None, [1])[0]] * 2
    assert writer.write(None, [1])[0].instruction is None
    with pytest.raises(ValueError, match="'gpt'"):
        make_writer("gpt")
