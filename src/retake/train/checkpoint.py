"""Training checkpoints: everything needed to continue a stage exactly, written atomically.

    <stage>/checkpoints/step-00000100/
      model.safetensors       the weights (with LoRA: the trainable adapter weights only; the frozen base is
                              rebuilt from the stage's init)
      ema.safetensors         the EMA shadow (when the stage keeps one)
      optimizer.safetensors   the optimiser state (AdamW moments, Muon momenta) per parameter name;
                              hyper-parameters go to state.json
      rng.safetensors         every rank's torch (and CUDA) generator state
      state.json              step, scheduler, every rank's data cursor and numpy/python RNG, the config

A checkpoint is assembled in a hidden temporary folder and renamed into place, so a crash leaves the previous
checkpoints untouched; only the newest `keep` stay. Model and optimiser state go through
`torch.distributed.checkpoint.state_dict`, so one code path serves a plain model, DDP and FSDP (which gathers
full tensors to rank 0 here).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from retake import files
from retake.checks import check_int
from retake.errors import RetakeError
from retake.train.distributed import DistEnv, barrier, gather_objects
from retake.train.ema import EMA

PREFIX = "step-"
STATE_NAME = "state.json"
_SEP = "::"  # parameter name :: optimizer state key (parameter names contain dots)


class ResumeError(RetakeError):
    """A checkpoint that does not fit the run being resumed."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def checkpoint_path(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:08d}"


def list_checkpoints(root: str | Path) -> list[Checkpoint]:
    """Complete checkpoints under `root`, oldest first (temporary folders of a crashed save are ignored)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    found = [
        Checkpoint(int(p.name.removeprefix(PREFIX)), p)
        for p in root.iterdir()
        if p.name.startswith(PREFIX) and p.name.removeprefix(PREFIX).isdigit() and (p / STATE_NAME).is_file()
    ]
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(root: str | Path) -> Checkpoint | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------
def write_checkpoint(
    root: str | Path,
    step: int,
    tensors: dict[str, dict[str, Tensor]],
    state: dict[str, Any],
    *,
    keep: int,
) -> Path:
    """Write `tensors` (file stem -> tensors) and `state` as checkpoint `step` (an int >= 0) atomically; prune
    to the newest `keep` (>= 1: the one just written must stay). A failed write leaves no temporary folder."""
    # Checked before anything is written: a negative step names a folder (step--0000001) that
    # `list_checkpoints` never finds, and keep=0 would silently keep them all.
    step = check_int("step", step, minimum=0)  # numpy integers become Python ints for the folder and JSON
    keep = check_int("keep", keep, minimum=1)
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(root, step)
    tmp = root / f".{final.name}.{os.getpid()}.tmp"  # what `files.remove_leftovers` clears after a kill
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_parts(tmp, tensors, state)
        # The same step may be saved again (a signal right after a periodic save): the one there is moved
        # aside first, and put back by `files.remove_leftovers` on resume if a kill comes before the new one
        # is in.
        files.move_folder_over(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename; half written after an error
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old.path)
    return final


def _write_parts(folder: Path, tensors: dict[str, dict[str, Tensor]], state: dict[str, Any]) -> None:
    for stem, group in tensors.items():
        if group:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in group.items()}, folder / f"{stem}.safetensors"
            )
    (folder / STATE_NAME).write_text(json.dumps(state, indent=1, default=files.json_default) + "\n")
    files.share(folder)


def _options(env: DistEnv, trainable_only: bool) -> StateDictOptions:
    return StateDictOptions(
        full_state_dict=True, cpu_offload=env.distributed, ignore_frozen_params=trainable_only
    )


def _full(tensor: Tensor) -> Tensor:
    """A DTensor (FSDP shard) -> the whole tensor; plain tensors pass (collective under FSDP)."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A name-keyed optimizer state dict -> (tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for name, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"{name}{_SEP}{key}"] = value
            else:
                scalars[f"{name}{_SEP}{key}"] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `flatten_optimizer`: a name-keyed optimizer state dict (JSON turned `betas` into a list;
    the optimizer wants its tuple back)."""
    state: dict[str, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        name, key = flat.rsplit(_SEP, 1)
        state.setdefault(name, {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def rng_state(device: torch.device) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """This process's global RNG states: torch (and CUDA) as tensors, numpy and python as JSON."""
    tensors = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["cuda"] = torch.cuda.get_rng_state(device)
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    return tensors, {
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
    }


def set_rng_state(tensors: dict[str, Tensor], meta: dict[str, Any], device: torch.device) -> None:
    """Restore the global RNGs `rng_state` saved, so a resumed run draws the same noise and dropout."""
    torch.set_rng_state(tensors["torch"])
    if device.type == "cuda" and "cuda" in tensors:
        torch.cuda.set_rng_state(tensors["cuda"], device)
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass
class TrainingState:
    """The live objects a checkpoint captures. `model` is the unwrapped module (its parameters are DDP's or
    FSDP's); `trainable_only` saves just the parameters that train (LoRA)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: EMA | None
    trainable_only: bool


def save_training_state(
    root: Path, step: int, live: TrainingState, extra: dict[str, Any], env: DistEnv, *, keep: int
) -> Path | None:
    """Collect the state on every rank (collective), write it from rank 0; returns the path on rank 0."""
    options = _options(env, live.trainable_only)
    model_state = get_model_state_dict(live.model, options=options)
    optim_state = get_optimizer_state_dict(live.model, live.optimizer, options=options)
    ema_state = {k: _full(v) for k, v in live.ema.state_dict().items()} if live.ema else {}
    rng = gather_objects(rng_state(env.device), env)
    path = None
    if env.is_main:
        optim_tensors, optim_meta = flatten_optimizer(optim_state)
        # LambdaLR: counters and learning rates; its lambdas are plain functions, stored as None
        scheduler = live.scheduler.state_dict()
        rng_tensors = {f"rank{r}.{k}": v for r, (tensors, _) in enumerate(rng) for k, v in tensors.items()}
        state = {
            **extra,
            "step": step,
            "world_size": env.world_size,
            "trainable_only": live.trainable_only,
            "scheduler": scheduler,
            "optimizer": optim_meta,
            "rng": [meta for _, meta in rng],
        }
        tensors = {"model": model_state, "ema": ema_state, "optimizer": optim_tensors, "rng": rng_tensors}
        path = write_checkpoint(root, step, tensors, state, keep=keep)
    barrier(env)
    return path


# Every checkpoint has these (a trained step always leaves optimiser moments); the EMA is the stage's choice.
_REQUIRED = ("model", "optimizer", "rng")


def _load(path: Path, stem: str) -> dict[str, Tensor]:
    """The tensors of `stem`.safetensors, {} when absent; a required file missing or unreadable is a
    ResumeError naming it (resuming without it would not be the same run, or would fail far from here)."""
    file = path / f"{stem}.safetensors"
    if not file.is_file():
        if stem in _REQUIRED:
            raise ResumeError(
                f"{file} is missing: the checkpoint is damaged; delete {path} to resume from the one before"
            )
        return {}
    try:
        return load_file(file)
    except (SafetensorError, OSError) as exc:
        raise ResumeError(
            f"{file} cannot be read ({exc}); delete {path} to resume from the one before"
        ) from None


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state.json; ResumeError naming it when it is not JSON."""
    file = path / STATE_NAME
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResumeError(f"{file} is damaged ({exc}); delete {path} to resume from the one before") from None


def load_training_state(path: Path, live: TrainingState, env: DistEnv) -> dict[str, Any]:
    """Restore model, optimiser, scheduler, EMA and this rank's RNG from a checkpoint; returns state.json."""
    state = read_state(path)
    if state["trainable_only"] != live.trainable_only:
        raise ResumeError(
            f"{path}: saved with trainable_only={state['trainable_only']}, the stage now differs (LoRA on/off?)"
        )
    model_state = _load(path, "model")
    _check_model_keys(path, model_state, live)
    options = StateDictOptions(full_state_dict=True, strict=not live.trainable_only)
    set_model_state_dict(live.model, model_state, options=options)
    optim = unflatten_optimizer(_load(path, "optimizer"), state["optimizer"])
    set_optimizer_state_dict(live.model, live.optimizer, optim, options=options)
    live.scheduler.load_state_dict(dict(state["scheduler"]))
    if live.ema is not None:
        ema_state = _load(path, "ema")
        if not ema_state:
            raise ResumeError(f"{path}: the stage keeps an EMA but the checkpoint has none")
        live.ema.load_state_dict(_local_shards(ema_state, live.ema))
    _restore_rng(path, state, env)
    return state


def _check_model_keys(path: Path, model_state: dict[str, Tensor], live: TrainingState) -> None:
    if live.trainable_only:
        expected = {n for n, p in live.model.named_parameters() if p.requires_grad}
    else:
        expected = set(live.model.state_dict())
    if set(model_state) != expected:
        missing, unexpected = sorted(expected - set(model_state)), sorted(set(model_state) - expected)
        raise ResumeError(
            f"{path}: model weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def _restore_rng(path: Path, state: dict[str, Any], env: DistEnv) -> None:
    """This rank's generators (rank 0's when the checkpoint came from fewer ranks)."""
    rng = _load(path, "rng")
    rank = env.rank if env.rank < len(state["rng"]) else 0
    prefix = f"rank{rank}."
    tensors = {k.removeprefix(prefix): v for k, v in rng.items() if k.startswith(prefix)}
    set_rng_state(tensors, state["rng"][rank], env.device)


def _local_shards(full: dict[str, Tensor], ema: EMA) -> dict[str, Tensor]:
    """Full EMA tensors -> this rank's shards when the shadow is sharded (FSDP), else as they are."""
    out = {}
    for name, value in full.items():
        shadow = ema.shadow[name]
        if hasattr(shadow, "device_mesh"):
            from torch.distributed.tensor import distribute_tensor

            value = distribute_tensor(value.to(shadow.device), shadow.device_mesh, shadow.placements)
        out[name] = value
    return out
