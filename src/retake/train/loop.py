"""The trainer: runs a `RunConfig`'s stages one after another, each resumable, on 1 process or under torchrun.

Per stage: open the data (latent cache, or videos encoded on the fly), build the model from the stage's init,
add LoRA, wrap it (DDP/FSDP), resume from the newest checkpoint if there is one, then per step:

    for each accumulation micro-batch: samples -> tricks + noise (per-sample generators) -> loss -> backward
    clip gradients -> optimiser step (AdamW, or Muon + AdamW) -> scheduler step -> EMA update -> log
    -> checkpoint every N steps

A SIGTERM/SIGINT finishes the step, saves and raises `TrainingInterrupted`; a non-finite loss raises
`NonFiniteLossError` naming the step and the batch's samples, without saving (the last good checkpoint stays).
At the end the merged transformer (and its EMA twin) is exported and the stage marked done.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from retake import files
from retake.checks import describe_change
from retake.errors import RetakeError
from retake.model.text import TextEmbedding, load_text_encoder
from retake.model.vae import VideoVAE, spatial_compression
from retake.train.cache import LatentCache, LatentCaches, open_caches
from retake.train.checkpoint import (
    ResumeError,
    TrainingState,
    latest_checkpoint,
    load_training_state,
    read_state,
    save_training_state,
)
from retake.train.config import (
    LoraSettings,
    OptimConfig,
    RunConfig,
    StageConfig,
    TricksConfig,
    config_to_dict,
)
from retake.train.datasets import ClipSpec, check_flatland_crop, open_triplets
from retake.train.distributed import (
    DistEnv,
    all_mean,
    any_rank,
    barrier,
    gather_objects,
    gradient_sync,
    setup,
    teardown,
    wrap_model,
)
from retake.train.ema import EMA
from retake.train.encode import EncodingDataset, LatentDataset, check_clip_size
from retake.train.export import (
    describe_init,
    export_transformer,
    initial_model,
    mark_done,
    stage_dir,
    stage_done,
    transformer_dir,
)
from retake.train.loader import SampleStream, epoch_seed
from retake.train.logs import MetricsLogger, TrainProgress, truncate_metrics
from retake.train.lora import apply_lora
from retake.train.muon import muon_adamw
from retake.train.signals import StopFlag
from retake.train.step import collate, compute_loss, make_inputs, sample_generator
from retake.train.subset import KindSubset, kept_indices, kind_shares, sample_weights, select_kinds

SCHEDULER_NAMES = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}


class TrainingInterrupted(RetakeError):
    """A stop signal arrived; the step finished and a checkpoint was saved. Rerun to resume."""


class NonFiniteLossError(RetakeError):
    """The loss became NaN or infinite; nothing was saved for this step."""


@dataclass(frozen=True)
class StepInfo:
    """What callbacks see after every optimiser step (on every rank)."""

    stage: str
    step: int
    loss: float
    lr: float
    grad_norm: float
    ids: tuple[str, ...]  # this rank's samples of the step


@dataclass(frozen=True)
class StageStart:
    """What `on_stage_start` sees when a stage begins or resumes, before its first step (main rank only)."""

    name: str
    index: int
    stages: int  # in the run
    steps: int
    start_step: int  # 0, or the step of the checkpoint it resumes from
    batch: int  # global
    samples: int  # in the stage's data (of `kinds`, when it names some)
    init: str  # where the weights start, in words (`describe_init`)
    parameters: int
    trainable: int  # LoRA adapters only, under LoRA
    device: str
    world_size: int
    kinds: tuple[str, ...] = ()  # the edit kinds the stage trains on; empty: every sample
    kind_shares: tuple[tuple[str, float], ...] = ()  # with data.kind_weights: each kind's share of the draws


@dataclass(frozen=True)
class StageResult:
    name: str
    steps: int
    transformer: Path
    ema_transformer: Path | None
    final_loss: float | None
    skipped: int
    resumed_from: int | None = None
    already_done: bool = False


@dataclass(frozen=True)
class TrainResult:
    out: Path
    stages: list[StageResult] = field(default_factory=list)


Callback = Callable[[StepInfo], None]
StartCallback = Callable[[StageStart], None]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None (float32) or bfloat16: 'auto' picks bf16 on CUDA devices that support it."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def open_stage_data(config: RunConfig, stage: StageConfig, device: torch.device) -> LatentDataset:
    """The stage's LatentDataset: the caches when `data.cache` is set (no VAE, no text encoder), else the
    dataset folder encoded on the fly (needs `vae`); narrowed to `data.kinds` when it names some."""
    data = stage.data
    where = f"stage {stage.name!r}'s data"
    if data.cache:
        return select_kinds(open_caches(data.cache), data.kinds, where)
    assert data.path is not None
    if config.vae is None:
        raise ValueError(
            f"stage {stage.name!r} reads videos (data.path) and needs `vae = DIR`; or set data.cache"
        )
    triplets = open_triplets(data.path, ClipSpec(data.frames, data.size), data.format)
    # Sizes suggested must split into the model's patches too: VAE compression x patch size.
    pixels = spatial_compression(config.vae, config.vae_subfolder) * config.model.transformer().patch_size
    check_flatland_crop(triplets, pixels)
    if data.kinds:
        kept_indices(triplets.kinds(), data.kinds, where)  # a bad kind fails before the encoders load
    vae = VideoVAE.from_pretrained(config.vae, subfolder=config.vae_subfolder, device=device)
    check_clip_size(vae, data.frames, data.size)
    encoded = EncodingDataset(triplets, vae, load_text_encoder(config.text_encoder, device=device))
    return select_kinds(encoded, data.kinds, where)


def check_data_fits(dataset: LatentDataset, model: nn.Module, stage: str) -> None:
    """The model's latent channels and text widths must be the data's (a clear error instead of a matmul one)."""
    spec = model.spec
    empty = dataset.empty_text()
    if isinstance(dataset, KindSubset):
        dataset = dataset.dataset
    have = {"text_embed_dim": empty.tokens.shape[-1], "pooled_projection_dim": empty.pooled.shape[-1]}
    if isinstance(dataset, LatentCache | LatentCaches):
        have["in_channels"] = dataset.latent_shape[0]
    elif isinstance(dataset, EncodingDataset):
        have["in_channels"] = dataset.vae.latent_channels
    # Each with the [model] key that makes it fit: the data's side is what the VAE and text encoder made.
    wrong = [
        f"{k}: model {getattr(spec, k)}, data {v} (set {k} = {v} under [model])"
        for k, v in have.items()
        if getattr(spec, k) != v
    ]
    if wrong:
        raise ValueError(f"stage {stage!r}: the data does not fit the model ({'; '.join(wrong)})")
    grid, clips = _data_grid(dataset)
    if grid is not None:
        _check_patches(grid, clips, spec, stage)


def _data_grid(dataset: LatentDataset) -> tuple[tuple[int, ...] | None, dict[str, Any]]:
    """The latent (F, H, W) of every sample and the clips' {"frames", "size"} they were encoded from, where
    known (a cache made by `retake cache` records them; one written otherwise may not)."""
    if isinstance(dataset, LatentCache | LatentCaches):
        index = dataset.index if isinstance(dataset, LatentCache) else dataset.parts[0].index
        clips = {k: index[k] for k in ("frames", "size") if k in index}
        return tuple(dataset.latent_shape[1:]), clips
    spec = getattr(getattr(dataset, "triplets", None), "spec", None)
    if isinstance(dataset, EncodingDataset) and isinstance(spec, ClipSpec):
        grid = dataset.vae.latent_shape(spec.frames, *spec.size)[1:]
        return tuple(grid), {"frames": spec.frames, "size": list(spec.size)}
    return None, {}


def _check_patches(grid: tuple[int, ...], clips: dict[str, Any], spec: Any, stage: str) -> None:
    """ValueError at the stage's start, naming the clip size to change, when the data's latents do not split
    into the model's patches (otherwise the first step fails with only the latent shape to go on)."""
    patch = (spec.patch_size_t, spec.patch_size, spec.patch_size)
    if all(g % p == 0 for g, p in zip(grid, patch, strict=True)):
        return
    made = ""
    if "frames" in clips and "size" in clips:
        made = f" (clips of {clips['frames']} frames at {clips['size'][0]}x{clips['size'][1]} px)"
    need = f"latent height and width multiples of {spec.patch_size}"
    if "size" in clips and grid[1]:
        pixels = clips["size"][0] // grid[1] * spec.patch_size  # VAE compression x patch
        need = f"clip height and width multiples of {pixels} px"
    if grid[0] % spec.patch_size_t:
        need += f" and latent frames a multiple of {spec.patch_size_t}"
    raise ValueError(
        f"stage {stage!r}: the data's latents (F, H, W) = {grid}{made} do not split into the model's "
        f"(F, H, W) patches {patch}; this model needs {need}: encode the data at such a size "
        "(`retake cache --size/--frames`, or data.size/data.frames), or change the model's patch sizes"
    )


def _scheduler(optimizer: torch.optim.Optimizer, stage: StageConfig) -> Any:
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        SCHEDULER_NAMES[stage.optim.schedule],
        optimizer,
        num_warmup_steps=stage.optim.warmup_steps,
        num_training_steps=stage.steps,
    )


# Stage settings that are tables of defaults: a checkpoint written before a setting existed holds the default
_TABLES = {"optim": OptimConfig, "tricks": TricksConfig, "lora": LoraSettings}
# Data settings added since checkpoints were first written, at their defaults.
_DATA_ADDED = {"kinds": [], "kind_weights": []}
_STAGE_ADDED = {"repatch": False}  # the same for stage settings


def settings_record(config: RunConfig, stage: StageConfig) -> dict[str, Any]:
    """What a stage's weights depend on, as checkpoints and done.json record it: the stage's settings, the
    model and the seed (gradient checkpointing changes memory, not the numbers), and where `out` was."""
    model = {k: v for k, v in config_to_dict(config.model).items() if k != "gradient_checkpointing"}
    return {
        "stage_config": config_to_dict(stage),
        "run_settings": {"model": model, "seed": config.seed},
        "out": str(config.out),
    }


def setting_changes(
    saved: dict[str, Any], config: RunConfig, stage: StageConfig, ignore: tuple[str, ...] = ()
) -> list[str]:
    """'key: then -> now' for each setting `saved` (a checkpoint's state or a done record) holds otherwise,
    but those in `ignore`.

    Records older than a setting hold its default. A path matches when it is the same, or the same relative
    to `out`: a run folder moved on its own, or a project moved as a whole (config, data and run), still
    matches its checkpoints."""
    now = settings_record(config, stage)
    then = {**now, "stage_config": _with_defaults(saved.get("stage_config", {}))}
    if "run_settings" in saved:  # not in records written before it was kept
        then["run_settings"] = saved["run_settings"]
    flat_then = _flatten({**then["stage_config"], **then["run_settings"]})
    flat_now = _flatten({**now["stage_config"], **now["run_settings"]})
    root_then = saved.get("out")
    return [
        describe_change(key, flat_then.get(key), value)
        for key, value in flat_now.items()
        if key not in ignore
        and value != flat_then.get(key)
        and (root_then is None or _portable(value, now["out"]) != _portable(flat_then.get(key), root_then))
    ]


def _with_defaults(then: dict[str, Any]) -> dict[str, Any]:
    then = {**_STAGE_ADDED, **then}
    for key, table in _TABLES.items():
        if isinstance(then.get(key), dict):  # settings added since the record was written: their defaults
            then[key] = {**config_to_dict(table()), **then[key]}
    if isinstance(then.get("data"), dict):
        then["data"] = {**_DATA_ADDED, **then["data"]}
    return then


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1}} -> {"optim.lr": 1}: a change is named down to the setting."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _portable(value: Any, root: str) -> Any:
    """`value` with absolute paths (also after "t2v:") relative to `root`."""
    if isinstance(value, list):
        return [_portable(v, root) for v in value]
    if isinstance(value, str):
        kind, _, rest = value.partition(":") if value.startswith("t2v:") else ("", "", value)
        if rest.startswith("/"):
            rest = os.path.relpath(rest, root)
            return f"{kind}:{rest}" if kind else rest
    return value


def _resume_check(saved: dict[str, Any], config: RunConfig, stage: StageConfig, path: Path) -> None:
    """Everything but `steps` must match the checkpoint's settings (else the continuation is not exact), and
    the checkpoint must not be past the stage's end."""
    changes = setting_changes(saved, config, stage, ignore=("steps",))
    if changes:
        raise ResumeError(
            f"{path} was written with other settings ({'; '.join(changes)}); restore them, or train into a "
            "new `out` folder"
        )
    if int(saved["step"]) > stage.steps:
        raise ResumeError(
            f"{path} is at step {saved['step']}, past stage {stage.name!r}'s steps = {stage.steps}; raise steps "
            "to at least that, or train into a new `out` folder"
        )


def _done_check(done: dict[str, Any], config: RunConfig, stage: StageConfig) -> None:
    """A finished stage is kept only if it was trained with the settings asked for now."""
    if "stage_config" not in done:  # finished before done records kept their settings
        return
    changes = setting_changes(done, config, stage)
    more_steps = stage.steps > int(done["stage_config"].get("steps", stage.steps))
    if changes and more_steps and not setting_changes(done, config, stage, ignore=("steps",)):
        raise ResumeError(
            f"stage {stage.name!r} in {config.out} finished after fewer steps ({changes[0]}); to train it on, "
            f"delete {stage_dir(config.out, stage.name) / 'done.json'}: it resumes from its last checkpoint"
        )
    if changes:
        raise ResumeError(
            f"stage {stage.name!r} in {config.out} finished with other settings ({'; '.join(changes)}); train "
            f"into a new `out` folder, or delete {stage_dir(config.out, stage.name)} to train it again"
        )


def check_existing(config: RunConfig) -> None:
    """Refuse, before anything is written, a run whose finished stages or checkpoints have other settings."""
    for stage in config.stages:
        done = stage_done(config.out, stage.name)
        if done is not None:
            _done_check(done, config, stage)
            continue
        found = latest_checkpoint(checkpoints_dir(config.out, stage.name))
        if found is not None:
            _resume_check(read_state(found.path), config, stage, found.path)


def checkpoints_dir(out: Path, stage: str) -> Path:
    return stage_dir(out, stage) / "checkpoints"


class StageTrainer:
    """Trains one stage of a run (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        index: int,
        env: DistEnv,
        *,
        callbacks: Sequence[Callback] = (),
        on_start: StartCallback | None = None,
        progress: bool = True,
    ) -> None:
        self.config, self.index, self.env = config, index, env
        self.on_start = on_start
        self.stage = config.stages[index]
        self.dir = stage_dir(config.out, self.stage.name)
        self.callbacks = list(callbacks)
        self.progress = progress and env.is_main
        torch.manual_seed(epoch_seed(config.seed, 1000 * index + env.rank))  # global RNG: LoRA dropout only
        self.dataset = open_stage_data(config, self.stage, env.device)
        self.model = self._build_model()
        check_data_fits(self.dataset, self.model, self.stage.name)
        self.empty_text: TextEmbedding = self.dataset.empty_text().to(env.device)
        self.autocast = autocast_dtype(config.precision, env.device)
        self.wrapped = wrap_model(self.model, env, param_dtype=self.autocast)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        optim = self.stage.optim
        self.optimizer = self._optimizer()
        self.scheduler = _scheduler(self.optimizer, self.stage)
        self.ema = EMA(self.model, optim.ema_decay) if optim.ema_decay is not None else None
        where = f"stage {self.stage.name!r}'s data"
        self.weights = sample_weights(self.dataset.kinds(), dict(self.stage.data.kind_weights), where)
        self.stream = SampleStream(
            self.dataset,
            seed=epoch_seed(config.seed, index),
            micro_batch=self.stage.micro_batch(env.world_size),
            world_size=env.world_size,
            rank=env.rank,
            weights=self.weights,
        )
        self.logger = MetricsLogger(config.out, tensorboard=config.tensorboard, enabled=env.is_main)
        self.step = 0
        self.resumed_from: int | None = None
        self.last_checkpoint: Path | None = None
        self.last_loss: float | None = None

    # ------------------------------------------------------------------------------------------------------
    # setup
    # ------------------------------------------------------------------------------------------------------
    def _build_model(self) -> nn.Module:
        model = initial_model(self.config, self.index)
        if self.stage.lora.enabled:
            apply_lora(model, self.stage.lora)
        else:
            model.requires_grad_(True)
        if self.config.model.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        if self.env.strategy == "fsdp":
            return model  # fully_shard moves each rank's shards to its device; the whole model never is
        return model.to(self.env.device)

    def _optimizer(self) -> torch.optim.Optimizer:
        optim = self.stage.optim
        hyper = {"lr": optim.lr, "betas": optim.betas, "eps": optim.eps, "weight_decay": optim.weight_decay}
        if optim.optimizer == "adamw":
            return torch.optim.AdamW(self.params, **hyper)
        if self.env.strategy == "fsdp":  # Newton-Schulz needs whole matrices, FSDP holds row shards
            raise ValueError(
                f"stage {self.stage.name!r}: optimizer 'muon' does not run under FSDP; use 'adamw'"
            )
        return muon_adamw(self.model, muon_lr=optim.muon_lr, **hyper)

    @property
    def checkpoints(self) -> Path:
        return checkpoints_dir(self.config.out, self.stage.name)

    def _live(self) -> TrainingState:
        return TrainingState(self.model, self.optimizer, self.scheduler, self.ema, self.stage.lora.enabled)

    def resume(self) -> None:
        """Continue from the newest checkpoint of this stage, if any."""
        if self.env.is_main:  # what writes killed outright left: half checkpoints, exports, done.json
            for folder in (self.dir, self.checkpoints):
                files.remove_leftovers(folder)
            for pattern in (".tmp-step-*", ".old-step-*"):  # the names checkpoints were staged under before
                for legacy in self.checkpoints.glob(pattern):
                    shutil.rmtree(legacy, ignore_errors=True)
        barrier(self.env)  # the cleanup may put a checkpoint back: every rank must see the same newest one
        found = latest_checkpoint(self.checkpoints)
        if found is None:  # a run killed before its first checkpoint logged steps that are redone now
            if self.env.is_main:
                truncate_metrics(self.logger.path, self.stage.name, 0)
            return
        # settings first: a checkpoint of another optimiser would not even load into this one
        _resume_check(read_state(found.path), self.config, self.stage, found.path)
        state = load_training_state(found.path, self._live(), self.env)
        self.step = self.resumed_from = int(state["step"])
        self.last_loss = state.get("loss")  # what a stage resumed at its last step reports as its final loss
        data = state["data"]
        if len(data) == self.env.world_size:
            self.stream.load_state_dict(data[self.env.rank])
        else:  # another number of ranks: continue after the samples consumed so far
            self.stream.restart_at(self.step * self.stage.batch)
        self.last_checkpoint = found.path
        if self.env.is_main:
            truncate_metrics(self.logger.path, self.stage.name, self.step)

    # ------------------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------------------
    def started(self) -> StageStart:
        """This stage's start (call after `resume`)."""
        return StageStart(
            name=self.stage.name,
            index=self.index,
            stages=len(self.config.stages),
            steps=self.stage.steps,
            start_step=self.step,
            batch=self.stage.batch,
            samples=len(self.dataset),
            init=describe_init(self.config, self.index),
            parameters=sum(p.numel() for p in self.model.parameters()),
            trainable=sum(p.numel() for p in self.params),
            device=self.env.device.type,
            world_size=self.env.world_size,
            kinds=self.stage.data.kinds,
            kind_shares=()
            if self.weights is None
            else tuple(kind_shares(self.dataset.kinds(), self.weights).items()),
        )

    def run(self) -> StageResult:
        self.resume()
        if self.on_start is not None and self.env.is_main:
            self.on_start(self.started())
        with (
            StopFlag() as stop,
            TrainProgress(self.stage.name, self.stage.steps, self.step, enabled=self.progress) as bar,
        ):
            while self.step < self.stage.steps:
                started = time.perf_counter()
                info, data_s = self.train_step()
                elapsed = time.perf_counter() - started
                self._log(info, elapsed, data_s)
                bar.update(self.step, info.loss, self.stage.batch / elapsed)
                for callback in self.callbacks:
                    callback(info)
                stopping = any_rank(stop.requested is not None, self.env)
                if stopping or self.step % self.config.checkpoint_every == 0 or self.step == self.stage.steps:
                    self.save()
                if stopping:
                    raise TrainingInterrupted(
                        f"stopped by {stop.requested or 'a signal on another rank'} after step {self.step} of stage "
                        f"{self.stage.name!r}; checkpoint saved to {self.last_checkpoint}. Run the same command "
                        "again to resume."
                    )
        return self.finish()

    def train_step(self) -> tuple[StepInfo, float]:
        """One optimiser step over `accumulation` micro-batches; returns its info and the seconds spent loading."""
        accumulation = self.stage.optim.accumulation
        self.optimizer.zero_grad(set_to_none=True)
        losses, ids, data_s = [], [], 0.0
        for micro in range(accumulation):
            loss, batch_ids, loading_s = self._micro_step(last=micro == accumulation - 1)
            losses.append(loss)
            ids.extend(batch_ids)
            data_s += loading_s
        grad_norm = self._clip()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        self.last_loss = float(all_mean(torch.stack(losses).mean(), self.env))
        lr = self.scheduler.get_last_lr()[0]
        return StepInfo(self.stage.name, self.step, self.last_loss, lr, grad_norm, tuple(ids)), data_s

    def _micro_step(self, *, last: bool) -> tuple[torch.Tensor, tuple[str, ...], float]:
        """Load a micro-batch, draw its tricks and noise, forward, backward (gradients synced on the last one);
        returns the detached loss, the sample ids and the loading seconds."""
        started = time.perf_counter()
        batch = collate(self.stream.next_batch()).to(self.env.device)
        loading_s = time.perf_counter() - started
        spec = self.model.spec
        inputs = make_inputs(
            batch,
            self.stage.tricks,
            self.empty_text,
            [sample_generator(self.config.seed, self.index, p, self.env.device) for p in batch.positions],
            conditioning=spec.conditioning,
            prior=spec.prior,
            guidance=self.stage.guidance if spec.guidance_embeds else None,
        )
        with gradient_sync(self.wrapped, self.env, sync=last):
            loss = compute_loss(self.wrapped, inputs, autocast_dtype=self.autocast)
            self._check_finite(loss, batch.ids)
            (loss / self.stage.optim.accumulation).backward()
        return loss.detach(), batch.ids, loading_s

    def _clip(self) -> float:
        limit = self.stage.optim.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(self.params, limit if limit is not None else math.inf)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def _check_finite(self, loss: torch.Tensor, ids: Sequence[str]) -> None:
        """All ranks agree whether any loss is NaN/inf, and then all raise (none is left waiting)."""
        bad = not bool(torch.isfinite(loss.detach()))
        if not any_rank(bad, self.env):
            return
        reports = gather_objects((float(loss.detach()), list(ids)), self.env)
        culprits = [i for value, batch in reports if not math.isfinite(value) for i in batch]
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint
            else "no checkpoint yet"
        )
        raise NonFiniteLossError(
            f"non-finite loss at step {self.step + 1} of stage {self.stage.name!r} on batch {culprits}; "
            f"nothing saved, {kept}"
        )

    # ------------------------------------------------------------------------------------------------------
    # saving and logging
    # ------------------------------------------------------------------------------------------------------
    def save(self) -> None:
        streams = gather_objects(self.stream.state_dict(), self.env)
        extra = {
            "stage": self.stage.name,
            "stage_index": self.index,
            **settings_record(self.config, self.stage),
            "data": streams,
            "loss": self.last_loss,
        }
        path = save_training_state(
            self.checkpoints, self.step, self._live(), extra, self.env, keep=self.config.keep_checkpoints
        )
        self.last_checkpoint = path or self.checkpoints

    def _log(self, info: StepInfo, elapsed: float, data_s: float) -> None:
        if self.step % self.config.log_every and self.step != self.stage.steps:
            return
        record = {
            "stage": info.stage,
            "step": info.step,
            "loss": info.loss,
            "lr": info.lr,
            "grad_norm": info.grad_norm,
            "samples_per_s": self.stage.batch / elapsed,
            "step_s": elapsed,
            "data_s": data_s,
            "epoch": self.stream.epoch,
            "skipped": self.stream.skips.count,
            "time": time.time(),
        }
        if self.env.device.type == "cuda":
            record["peak_mem_gib"] = torch.cuda.max_memory_allocated(self.env.device) / 2**30
        self.logger.log(record)

    def finish(self) -> StageResult:
        """Export the merged transformer (and EMA twin), mark the stage done."""
        out = self.config.out
        name = self.stage.name
        export_transformer(self.model, transformer_dir(out, name), self.env, lora=self.stage.lora)
        ema_dir = transformer_dir(out, name, ema=True) if self.ema is not None else None
        if ema_dir is not None:
            export_transformer(self.model, ema_dir, self.env, lora=self.stage.lora, ema=self.ema)
        skipped = sum(s["skips"]["count"] for s in gather_objects(self.stream.state_dict(), self.env))
        if self.env.is_main:
            record = {"steps": self.step, "loss": self.last_loss, "skipped": skipped}
            mark_done(out, name, record | settings_record(self.config, self.stage))
        self.logger.close()
        return StageResult(
            name,
            self.step,
            transformer_dir(out, name),
            ema_dir,
            self.last_loss,
            skipped,
            self.resumed_from,
        )


def train(
    config: RunConfig,
    *,
    callbacks: Sequence[Callback] = (),
    on_stage_start: StartCallback | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Run every unfinished stage of `config` (resuming the one that was interrupted); see the module doc.

    `callbacks` see every step on every rank; `on_stage_start` sees each stage that trains, once, on rank 0.

    Under torchrun every process calls this with the same config. Raises TrainingInterrupted on SIGTERM/SIGINT
    (after saving) and NonFiniteLossError on a NaN/inf loss.
    """
    env = setup(config.distributed, config.device)
    try:
        check_existing(config)  # on every rank: all of them stop, none is left waiting for the others
        if env.is_main:
            config.out.mkdir(parents=True, exist_ok=True)
            files.write_json(config.out / "run.json", config_to_dict(config))
        results = []
        for index, stage in enumerate(config.stages):
            done = stage_done(config.out, stage.name)
            if done is not None:
                results.append(_done_result(config, stage, done))
                continue
            trainer = StageTrainer(
                config,
                index,
                env,
                callbacks=callbacks,
                on_start=on_stage_start,
                progress=config.progress if progress is None else progress,
            )
            results.append(trainer.run())
        return TrainResult(config.out, results)
    finally:
        teardown(env)


def _done_result(config: RunConfig, stage: StageConfig, done: dict[str, Any]) -> StageResult:
    ema = transformer_dir(config.out, stage.name, ema=True)
    return StageResult(
        stage.name,
        int(done["steps"]),
        transformer_dir(config.out, stage.name),
        ema if ema.is_dir() else None,
        done.get("loss"),
        int(done.get("skipped", 0)),
        already_done=True,
    )


__all__ = [
    "NonFiniteLossError",
    "StageResult",
    "StageStart",
    "StageTrainer",
    "StepInfo",
    "TrainResult",
    "TrainingInterrupted",
    "autocast_dtype",
    "train",
]
