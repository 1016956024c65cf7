"""Never lose work: exact resume after SIGTERM, atomic checkpoints, keep-last-K, NaN stops without saving."""

from __future__ import annotations

import json
import os
import signal

import pytest
from safetensors.torch import load_file
from train_fixtures import run_config, stage, write_random_cache

from retake.train.checkpoint import ResumeError, list_checkpoints
from retake.train.export import transformer_dir
from retake.train.logs import read_metrics
from retake.train.loop import NonFiniteLossError, TrainingInterrupted, train


def _weights(folder):
    return load_file(folder / "diffusion_pytorch_model.safetensors")


def _stop_at(step: int):
    def callback(info) -> None:
        if info.step == step:
            os.kill(os.getpid(), signal.SIGTERM)

    return callback


def _straight_and_split(tmp_path, spec, stop: int, every: int):
    """Train `spec` straight, and again stopped by SIGTERM after step `stop` then resumed."""
    straight = run_config(tmp_path / "straight", [spec], checkpoint_every=every)
    split = run_config(tmp_path / "split", [spec], checkpoint_every=every)
    train(straight)
    with pytest.raises(TrainingInterrupted, match=f"SIGTERM after step {stop}"):
        train(split, callbacks=[_stop_at(stop)])
    saved = [c.step for c in list_checkpoints(split.out / "stages/s/checkpoints")]
    starts = []
    result = train(split, on_stage_start=starts.append)
    assert result.stages[0].resumed_from == starts[0].start_step == stop
    return straight.out, split.out, saved


def _assert_same_run(a_out, b_out, steps: int, ema: bool) -> None:
    losses = [r["loss"] for r in read_metrics(a_out)]
    assert len(losses) == steps and losses == [r["loss"] for r in read_metrics(b_out)]
    for kind in (False, True) if ema else (False,):
        a, b = (
            _weights(transformer_dir(a_out, "s", ema=kind)),
            _weights(transformer_dir(b_out, "s", ema=kind)),
        )
        assert a.keys() == b.keys()
        assert all(a[k].equal(b[k]) for k in a), f"weights differ after resume (ema={kind})"


def test_twenty_steps_equal_ten_plus_resume_plus_ten(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 7)  # 7 samples, batch 4: epochs straddle steps
    optim = {"accumulation": 2, "warmup_steps": 3, "schedule": "cosine", "ema_decay": 0.9}
    spec = stage("s", cache, steps=20, batch=4, optim=optim, tricks="insvie")
    straight, split, saved = _straight_and_split(tmp_path, spec, stop=10, every=7)
    assert saved == [7, 10]
    _assert_same_run(straight, split, 20, ema=True)


def test_muon_resumes_exactly_from_its_momentum_and_adam_moments(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    optim = {"optimizer": "muon", "muon_lr": 0.02, "lr": 1e-3, "warmup_steps": 2, "schedule": "cosine"}
    spec = stage("s", cache, steps=8, batch=2, optim=optim)
    straight, split, _ = _straight_and_split(tmp_path, spec, stop=4, every=100)
    _assert_same_run(straight, split, 8, ema=False)
    saved = load_file(split / "stages/s/checkpoints/step-00000004/optimizer.safetensors")
    assert any(k.endswith("::momentum_buffer") for k in saved) and any(k.endswith("::exp_avg") for k in saved)


def test_a_checkpoint_from_before_a_new_setting_resumes_when_the_setting_keeps_its_default(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    spec = stage("s", cache, steps=6, batch=2)
    straight = run_config(tmp_path / "straight", [spec], checkpoint_every=100)
    split = run_config(tmp_path / "split", [spec], checkpoint_every=100)
    train(straight)
    with pytest.raises(TrainingInterrupted):
        train(split, callbacks=[_stop_at(3)])
    # rewrite the checkpoint as if written before `optimizer`, `muon_lr`, `data.kinds` and `repatch` existed;
    # resume it
    state = split.out / "stages/s/checkpoints/step-00000003/state.json"
    saved = json.loads(state.read_text())
    for key in ("optimizer", "muon_lr"):
        del saved["stage_config"]["optim"][key]
    del saved["stage_config"]["data"]["kinds"]
    del saved["stage_config"]["repatch"]
    state.write_text(json.dumps(saved))
    muon = stage("s", cache, steps=6, batch=2, optim={"optimizer": "muon"})  # not the old run's optimiser
    with pytest.raises(ResumeError, match=r"other settings \(optim\.optimizer: 'adamw' -> 'muon'\)"):
        train(run_config(tmp_path / "split", [muon], checkpoint_every=100))
    assert train(split).stages[0].resumed_from == 3
    _assert_same_run(straight.out, split.out, 6, ema=False)


def test_lora_resume_rebuilds_the_frozen_base_and_continues_exactly(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    spec = stage("s", cache, steps=6, batch=2, lora={"rank": 4}, tricks="insvie")
    straight, split, _ = _straight_and_split(tmp_path, spec, stop=3, every=100)
    _assert_same_run(straight, split, 6, ema=False)
    saved = load_file(split / "stages/s/checkpoints/step-00000003/model.safetensors")
    assert saved and all("lora_" in k for k in saved)  # only the adapters are checkpointed


def test_checkpoints_keep_the_newest_and_ignore_unfinished_ones(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = run_config(
        tmp_path / "run", [stage("s", cache, steps=6)], checkpoint_every=2, keep_checkpoints=2
    )
    root = config.out / "stages/s/checkpoints"
    root.mkdir(parents=True)
    (root / ".tmp-step-00000004-123").mkdir()  # a save killed half way
    (root / "step-00000099").mkdir()  # no state.json: never completed
    train(config)
    assert [c.step for c in list_checkpoints(root)] == [4, 6]
    assert sorted(
        p.name for p in root.iterdir() if p.name.startswith("step-") and p.name != "step-00000099"
    ) == [
        "step-00000004",
        "step-00000006",
    ]


def test_rerun_of_a_finished_run_trains_nothing(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = run_config(tmp_path / "run", [stage("s", cache, steps=2)])
    first = train(config)
    again = train(config)
    assert again.stages[0].already_done and not first.stages[0].already_done
    assert len(read_metrics(config.out)) == 2


def test_nan_loss_stops_with_step_and_ids_and_keeps_the_last_good_checkpoint(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4, nan_ids=[2])
    # batch 4 = the whole dataset: step 1 already meets the NaN sample, so give it a clean dataset first
    clean = write_random_cache(tmp_path / "clean", 4)
    config = run_config(tmp_path / "run", [stage("s", clean, steps=2)], checkpoint_every=2)
    train(config)
    bad = run_config(
        tmp_path / "run",
        [stage("s", clean, steps=2), stage("t", cache, steps=5, batch=1)],
        checkpoint_every=1,
    )
    with pytest.raises(NonFiniteLossError) as info:
        train(bad)
    message = str(info.value)
    assert "stage 't'" in message and "s002" in message
    step = int(message.split("at step ")[1].split()[0])
    saved = [c.step for c in list_checkpoints(bad.out / "stages/t/checkpoints")]
    assert saved == list(range(1, step))[-2:]  # everything before the bad step, nothing at or after it
    assert f"step-{step - 1:08d}" in message if step > 1 else "no checkpoint yet" in message
    assert not (bad.out / "stages/t/done.json").exists()


def _interrupted(tmp_path, spec, stop: int, **top):
    config = run_config(tmp_path / "run", [spec], checkpoint_every=100, **top)
    with pytest.raises(TrainingInterrupted):
        train(config, callbacks=[_stop_at(stop)])
    return config


def test_a_checkpoint_of_another_model_or_seed_is_refused_naming_the_change(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    spec = stage("s", cache, steps=6)
    _interrupted(tmp_path, spec, 3)
    sample = run_config(tmp_path / "run", [spec], model={"prediction": "sample"})
    with pytest.raises(
        ResumeError, match=r"other settings \(model\.overrides: \[\] -> \[\['prediction', 'sample'\]\]\)"
    ):
        train(sample)
    with pytest.raises(ResumeError, match=r"other settings \(seed: 0 -> 5\)"):
        train(run_config(tmp_path / "run", [spec], seed=5))
    again = run_config(tmp_path / "run", [spec], model={"gradient_checkpointing": True})  # memory only
    assert train(again).stages[0].resumed_from == 3


def test_a_finished_stage_with_other_settings_is_refused_and_run_json_kept(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    config = run_config(tmp_path / "run", [stage("s", cache, steps=4)])
    train(config)
    recorded = (config.out / "run.json").read_text()
    longer = run_config(tmp_path / "run", [stage("s", cache, steps=12, optim={"lr": 7e-3})])
    with pytest.raises(
        ResumeError,
        match=r"stage 's' .* finished with other settings \(steps: 4 -> 12; optim\.lr: 0\.001 -> 0\.007\); .* delete .*stages/s",
    ):
        train(longer)
    assert (config.out / "run.json").read_text() == recorded
    assert train(config).stages[0].already_done
    more = run_config(tmp_path / "run", [stage("s", cache, steps=6)])
    with pytest.raises(
        ResumeError,
        match=r"finished after fewer steps \(steps: 4 -> 6\); to train it on, delete .*done\.json",
    ):
        train(more)
    (config.out / "stages/s/done.json").unlink()
    assert train(more).stages[0].resumed_from == 4


def test_a_checkpoint_past_the_stage_end_is_refused(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    spec = stage("s", cache, steps=8)
    config = run_config(tmp_path / "run", [spec], checkpoint_every=5)
    with pytest.raises(TrainingInterrupted):
        train(config, callbacks=[_stop_at(6)])
    shorter = run_config(tmp_path / "run", [stage("s", cache, steps=4)], checkpoint_every=5)
    with pytest.raises(ResumeError, match=r"step-00000006 is at step 6, past stage 's''s steps = 4"):
        train(shorter)
    assert not (config.out / "stages/s/done.json").exists()


def test_a_stage_resumed_at_its_last_step_reports_the_checkpoints_loss(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    config = run_config(tmp_path / "run", [stage("s", cache, steps=4)])
    first = train(config).stages[0]
    (config.out / "stages/s/done.json").unlink()  # killed between the last checkpoint and marking it done
    again = train(config).stages[0]
    assert again.resumed_from == 4 and again.final_loss == first.final_loss is not None


def test_steps_logged_before_the_first_checkpoint_are_not_logged_twice(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    config = run_config(tmp_path / "run", [stage("s", cache, steps=5)], checkpoint_every=100)

    def crash_at_three(info) -> None:
        if info.step == 3:
            raise RuntimeError("killed")  # as a SIGKILL: no checkpoint, three steps logged

    with pytest.raises(RuntimeError):
        train(config, callbacks=[crash_at_three])
    train(config)
    assert [r["step"] for r in read_metrics(config.out)] == [1, 2, 3, 4, 5]


def test_a_project_moved_as_a_whole_resumes(tmp_path):
    project = tmp_path / "project"
    cache = write_random_cache(project / "cache", 5)
    _interrupted(project, stage("s", cache, steps=6), 3)
    moved = tmp_path / "moved"
    project.rename(moved)
    config = run_config(moved / "run", [stage("s", moved / "cache", steps=6)], checkpoint_every=100)
    assert train(config).stages[0].resumed_from == 3
    elsewhere = write_random_cache(tmp_path / "other-cache", 5)  # another cache is another run
    (moved / "run/stages/s/done.json").unlink()
    with pytest.raises(ResumeError, match=r"data\.cache"):
        train(run_config(moved / "run", [stage("s", elsewhere, steps=6)], checkpoint_every=100))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ckpt: (ckpt / "optimizer.safetensors").unlink(), r"optimizer\.safetensors is missing"),
        (lambda ckpt: (ckpt / "rng.safetensors").unlink(), r"rng\.safetensors is missing"),
        (
            lambda ckpt: (ckpt / "model.safetensors").write_bytes(
                (ckpt / "model.safetensors").read_bytes()[:100]
            ),
            r"model\.safetensors cannot be read",
        ),
        (lambda ckpt: (ckpt / "state.json").write_text("{"), r"state\.json is damaged"),
    ],
)
def test_a_damaged_checkpoint_is_named_not_resumed_from(tmp_path, damage, message):
    cache = write_random_cache(tmp_path / "cache", 5)
    config = _interrupted(tmp_path, stage("s", cache, steps=6), 3)
    damage(config.out / "stages/s/checkpoints/step-00000003")
    with pytest.raises(ResumeError, match=message + ".*delete .*step-00000003 to resume from the one before"):
        train(config)


def test_what_writes_killed_outright_left_is_cleared_when_the_stage_resumes(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    config = _interrupted(tmp_path, stage("s", cache, steps=6), 3)
    stage_folder = config.out / "stages/s"
    leftovers = [
        stage_folder / ".transformer.dwxgon_5.tmp",  # a staged export
        stage_folder / "checkpoints/.step-00000004.29084.tmp",  # a half checkpoint
        stage_folder / "checkpoints/.tmp-step-00000004-29084",  # one named as before files.py
    ]
    for folder in leftovers:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x" * 100)
    (stage_folder / ".done.json.1.2.tmp").write_text("{")
    assert train(config).stages[0].resumed_from == 3
    assert not [p for p in stage_folder.rglob(".*") if p.name != ".cache"], "leftovers remain"
