"""torchrun on CPU (gloo): two DDP ranks stay identical and match one process on the same global batch; the
loader's rank split is the single process's batch. FSDP on GPUs is marked `gpu`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from train_fixtures import run_config, run_table, stage, write_random_cache

from retake.train.checkpoint import latest_checkpoint
from retake.train.distributed import DistEnv
from retake.train.export import transformer_dir
from retake.train.loader import SampleStream
from retake.train.logs import read_metrics
from retake.train.loop import StageTrainer, train

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun(tmp_path: Path, table: dict, nproc: int = 2) -> dict[int, dict[str, torch.Tensor]]:
    config = tmp_path / "run.json"
    config.write_text(json.dumps(table))
    dump = tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        str(TORCHRUN),
        "--standalone",
        f"--nproc-per-node={nproc}",
        str(WORKER),
        str(config),
        str(dump),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return {r: load_file(dump / f"rank{r}.safetensors") for r in range(nproc)}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_rank_streams_partition_the_single_process_batches(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 7)
    from retake.train.cache import LatentCache

    data = LatentCache(cache)
    single = SampleStream(data, seed=3, micro_batch=4)
    ranks = [SampleStream(data, seed=3, micro_batch=2, world_size=2, rank=r) for r in range(2)]
    for _ in range(5):  # crosses epoch boundaries (7 samples)
        want = [(s.sample.id, s.position) for s in single.next_batch()]
        got = [(s.sample.id, s.position) for r in ranks for s in r.next_batch()]
        assert got == want


def test_a_stream_resumed_on_another_world_size_continues_after_the_consumed_samples(tmp_path):
    from retake.train.cache import LatentCache

    data = LatentCache(write_random_cache(tmp_path / "cache", 7))
    single = SampleStream(data, seed=1, micro_batch=4)
    for _ in range(3):
        single.next_batch()  # 12 positions consumed by one process ...
    ranks = [SampleStream(data, seed=1, micro_batch=2, world_size=2, rank=r) for r in range(2)]
    for r in ranks:
        r.restart_at(12)  # ... continued by two
    assert [s.position for r in ranks for s in r.next_batch()] == [s.position for s in single.next_batch()]


@pytest.mark.slow  # two torchrun workers importing torch + diffusers: ~15 s idle, a minute on a busy machine
def test_ddp_two_ranks_equal_each_other_and_one_process(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 8)
    spec = stage("s", cache, steps=3, batch=4, tricks="insvie")
    ranks = _torchrun(tmp_path, run_table(tmp_path / "ddp", [spec], distributed="ddp"))
    single = train(run_config(tmp_path / "single", [spec]))
    reference = _exported(single.stages[0].transformer)

    assert _max_diff(ranks[0], ranks[1]) == 0.0  # DDP keeps every rank's weights identical
    assert _max_diff(ranks[0], reference) <= 1e-5  # 2 x 2 samples == 4 samples in one process
    assert _max_diff(_exported(transformer_dir(tmp_path / "ddp", "s")), ranks[0]) == 0.0
    ddp_losses = [r["loss"] for r in read_metrics(tmp_path / "ddp")]
    single_losses = [r["loss"] for r in read_metrics(tmp_path / "single")]
    assert ddp_losses == pytest.approx(single_losses, rel=1e-6)  # the logged loss is the global-batch mean


def _exported(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "diffusion_pytorch_model.safetensors")


@pytest.fixture
def one_rank_group(tmp_path):
    """A real gloo process group of one rank, in this process (collectives run, nothing is spawned)."""
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.filterwarnings(
    "ignore:FSDP2-wrapped module"
)  # the model returns a view; nothing edits it in place
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_wrapped_single_rank_training_equals_plain_training(tmp_path, one_rank_group, strategy):
    cache = write_random_cache(tmp_path / "cache", 6)
    spec = stage("s", cache, steps=3, batch=4, optim={"accumulation": 2, "ema_decay": 0.5}, tricks="insvie")
    plain = train(run_config(tmp_path / "plain", [spec]))
    config = run_config(tmp_path / strategy, [spec])
    env = DistEnv(0, 1, 0, torch.device("cpu"), strategy)
    trainer = StageTrainer(config, 0, env, progress=False)
    result = trainer.run()
    for ema in (False, True):
        a = _exported(plain.stages[0].ema_transformer if ema else plain.stages[0].transformer)
        b = _exported(result.ema_transformer if ema else result.transformer)
        assert _max_diff(a, b) <= 1e-6
    assert [r["loss"] for r in read_metrics(config.out)] == pytest.approx(
        [r["loss"] for r in read_metrics(plain.out)]
    )
    assert latest_checkpoint(config.out / "stages/s/checkpoints").step == 3


@pytest.mark.gpu
def test_fsdp_on_gpus_matches_one_process(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("FSDP test needs 2 CUDA devices")
    cache = write_random_cache(tmp_path / "cache", 8)
    spec = stage("s", cache, steps=3, batch=4, optim={"lr": 1e-2}, tricks="insvie")
    table = run_table(tmp_path / "fsdp", [spec], distributed="fsdp", device="cuda", precision="fp32")
    ranks = _torchrun(tmp_path, table)
    single = train(run_config(tmp_path / "single", [spec], device="cuda", precision="fp32"))
    reference = load_file(single.stages[0].transformer / "diffusion_pytorch_model.safetensors")
    assert _max_diff(ranks[0], ranks[1]) == 0.0
    assert _max_diff(ranks[0], reference) <= 1e-4  # cuda reductions differ in order across shardings


@pytest.mark.filterwarnings("ignore:FSDP2-wrapped module")
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_fsdp_resume_continues_like_an_unbroken_run(tmp_path, one_rank_group, lora):
    cache = write_random_cache(tmp_path / "cache", 6)
    optim = {"ema_decay": 0.5, "lr": 1e-3}
    table = {"batch": 2, "optim": optim, "tricks": "insvie", "lora": {"rank": lora}}
    env = DistEnv(0, 1, 0, torch.device("cpu"), "fsdp")
    plain = train(run_config(tmp_path / "plain", [stage("s", cache, steps=4, **table)]))
    unbroken = StageTrainer(
        run_config(tmp_path / "unbroken", [stage("s", cache, steps=4, **table)]), 0, env, progress=False
    ).run()
    first = run_config(tmp_path / "sharded", [stage("s", cache, steps=2, **table)], checkpoint_every=1)
    StageTrainer(first, 0, env, progress=False).run()
    resumed = StageTrainer(
        run_config(first.out, [stage("s", cache, steps=4, **table)]), 0, env, progress=False
    )
    result = resumed.run()
    assert result.resumed_from == 2
    for ema in (False, True):
        a = _exported(unbroken.ema_transformer if ema else unbroken.transformer)
        b = _exported(result.ema_transformer if ema else result.transformer)
        assert _max_diff(a, b) == 0.0  # a resumed sharded run is the unbroken one, bit for bit
        # FSDP's flat-parameter arithmetic rounds differently from plain training (1.1e-6 seen on some CPUs)
        c = _exported(plain.stages[0].ema_transformer if ema else plain.stages[0].transformer)
        assert _max_diff(c, b) <= 1e-5
