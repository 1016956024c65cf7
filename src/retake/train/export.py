"""Where a stage's weights start and what it leaves behind.

    OUT/stages/<name>/transformer/        merged weights at the stage's end (diffusers save_pretrained, safetensors)
    OUT/stages/<name>/transformer-ema/    the same with the EMA weights, when the stage keeps an EMA
    OUT/stages/<name>/done.json           written last: the stage is finished and is skipped on a rerun

Both folders load as a plain `InContextTransformer.from_pretrained(dir)` (LoRA is merged away), which is also
how a later stage with init "previous" / "stage:<name>" starts.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from retake.files import staged_folder, write_json
from retake.model.checkpoints import load_t2v_into_channel
from retake.model.config import TransformerConfig
from retake.model.grow import grow_depth
from retake.model.patch import resize_patches
from retake.model.presets import build_transformer
from retake.model.transformer import InContextTransformer
from retake.model.weights import check_model_folder
from retake.train.config import LoraSettings, RunConfig
from retake.train.distributed import DistEnv, barrier
from retake.train.ema import EMA
from retake.train.lora import apply_lora, merge_lora

DONE_NAME = "done.json"


def stage_dir(out: Path, name: str) -> Path:
    return out / "stages" / name


def transformer_dir(out: Path, name: str, *, ema: bool = False) -> Path:
    return stage_dir(out, name) / ("transformer-ema" if ema else "transformer")


def stage_done(out: Path, name: str) -> dict[str, Any] | None:
    """The done record of a finished stage, else None."""
    path = stage_dir(out, name) / DONE_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def mark_done(out: Path, name: str, record: dict[str, Any]) -> None:
    write_json(stage_dir(out, name) / DONE_NAME, record)


# ----------------------------------------------------------------------------------------------------------
# initial weights
# ----------------------------------------------------------------------------------------------------------
def init_source(config: RunConfig, index: int) -> tuple[str, Path | None]:
    """(kind, path) of stage `index`'s init: fresh, pretrained (a model folder) or t2v (widened into channels)."""
    init = config.stages[index].init
    ema = config.stages[index].init_weights == "ema"
    if init == "fresh":
        return "fresh", None
    if init == "previous":
        return "pretrained", transformer_dir(config.out, config.stages[index - 1].name, ema=ema)
    if init.startswith("stage:"):
        return "pretrained", transformer_dir(config.out, init.removeprefix("stage:"), ema=ema)
    if init.startswith("t2v:"):
        return "t2v", Path(init.removeprefix("t2v:")).expanduser()
    return "pretrained", Path(init).expanduser()


def initial_model(config: RunConfig, index: int) -> InContextTransformer:
    """Stage `index`'s starting transformer on the CPU in float32 (the caller moves it)."""
    spec = config.model.transformer()
    kind, path = init_source(config, index)
    if kind == "fresh":
        return build_transformer(spec, seed=config.seed)
    assert path is not None
    if not path.is_dir():
        stage = config.stages[index]
        hint = (
            "has that stage finished?"
            if stage.init == "previous" or stage.init.startswith("stage:")
            else "init is fresh, previous, stage:<name>, t2v:<dir> or a saved model folder"
        )
        raise FileNotFoundError(f"stage {stage.name!r}: init weights not found at {path} ({hint})")
    if kind == "t2v":
        model = build_transformer(spec, seed=config.seed)
        load_t2v_into_channel(model, path)
        return model
    check_model_folder(path, "InContextTransformer")
    model = InContextTransformer.from_pretrained(path, local_files_only=True)
    stage = config.stages[index]
    _check_compatible(model.spec, spec, path, grow=stage.grow, repatch=stage.repatch)
    if stage.grow:
        model = grow_depth(model, spec.num_layers, spec.num_single_layers, seed=config.seed)
    if stage.repatch:
        model = resize_patches(model, spec.patch_size, spec.patch_size_t)
    if model.spec.attention != spec.attention:
        model.set_attention_mode(spec.attention)  # same weights; e.g. fine-tune a full model into one-way
    if model.spec.prior != spec.prior:
        model.set_prior(spec.prior)  # same weights; the stage trains them on the run's path
    return model


def describe_init(config: RunConfig, index: int) -> str:
    """Where stage `index` starts, in words: fresh weights, an earlier stage's weights or a folder, and with
    `grow` / `repatch` the depths and patches it changes. Call it after `initial_model` succeeded (it reads the
    init's config)."""
    stage = config.stages[index]
    kind, path = init_source(config, index)
    if kind == "fresh":
        return f"fresh weights (seed {config.seed})"
    if kind == "t2v":
        return f"text-to-video weights {path}, widened for channel conditioning"
    where = str(path)
    if stage.init == "previous" or stage.init.startswith("stage:"):
        earlier = (
            config.stages[index - 1].name if stage.init == "previous" else stage.init.removeprefix("stage:")
        )
        where = f"the {'EMA' if stage.init_weights == 'ema' else 'raw'} weights of stage {earlier!r}"
    if not (stage.grow or stage.repatch):
        return where
    assert path is not None
    old = json.loads((path / "config.json").read_text())
    new = config.model.transformer()
    if stage.grow:
        where += _describe_change("grow", "grown from", "blocks", *_depths(old, new))
    if stage.repatch:
        where += _describe_change("repatch", "patches resized from", "latents", *_patches(old, new))
    return where


def _depths(old: dict[str, Any], new: TransformerConfig) -> tuple[str, str]:
    return f"{old['num_layers']} + {old['num_single_layers']}", f"{new.num_layers} + {new.num_single_layers}"


def _patches(old: dict[str, Any], new: TransformerConfig) -> tuple[str, str]:
    before = f"{old['patch_size_t']}x{old['patch_size']}x{old['patch_size']}"
    return before, f"{new.patch_size_t}x{new.patch_size}x{new.patch_size}"


def _describe_change(option: str, verb: str, unit: str, before: str, after: str) -> str:
    if before == after:
        return f" ({option}: already {after} {unit})"
    return f", {verb} {before} to {after} {unit}"


_DEPTHS = ("num_layers", "num_single_layers")
_PATCHES = ("patch_size", "patch_size_t")


def _check_compatible(
    loaded: TransformerConfig, wanted: TransformerConfig, path: Path, *, grow: bool, repatch: bool
) -> None:
    """ValueError naming each field where the init weights differ from the run's [model] in a way no
    init can bridge; attention and prior switch in place, with `grow` the depths may increase and with
    `repatch` the patch sizes may change."""
    free = ("attention", "prior") + (_DEPTHS if grow else ()) + (_PATCHES if repatch else ())
    differ = [
        f"{f.name}={getattr(loaded, f.name)!r} (run: {getattr(wanted, f.name)!r})"
        for f in fields(TransformerConfig)
        if f.name not in free and getattr(loaded, f.name) != getattr(wanted, f.name)
    ]
    if grow:
        differ += [
            f"{name}={getattr(loaded, name)!r} (run: {getattr(wanted, name)!r}; grow only adds blocks)"
            for name in _DEPTHS
            if getattr(loaded, name) > getattr(wanted, name)
        ]
    elif any(getattr(loaded, name) < getattr(wanted, name) for name in _DEPTHS):
        differ.append("set grow = true in the stage to start the deeper model from these weights")
    if not repatch and any(getattr(loaded, name) != getattr(wanted, name) for name in _PATCHES):
        differ.append("set repatch = true in the stage to resize these weights' patches")
    if differ:
        raise ValueError(f"init weights {path} do not match the run's [model]: {', '.join(differ)}")


# ----------------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------------
def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def export_transformer(
    model: nn.Module,
    path: Path,
    env: DistEnv,
    *,
    lora: LoraSettings,
    ema: EMA | None = None,
) -> Path | None:
    """Save `model` (unwrapped; EMA weights when `ema` is given) as a plain, merged InContextTransformer.

    Collective under DDP/FSDP (every rank gathers), written by rank 0 atomically; returns the path there.
    """
    options = StateDictOptions(full_state_dict=True, cpu_offload=env.distributed)
    state = get_model_state_dict(model, options=options)
    if ema is not None:
        shadow = {k: _full(v) for k, v in ema.state_dict().items()}
        state = {**state, **{k: v.to(state[k].dtype) for k, v in shadow.items()}} if env.is_main else state
    written = None
    if env.is_main:
        plain = _plain_copy(model.spec, _unshared(state, model), lora)
        written = _save_pretrained(plain, path)
    barrier(env)
    return written


def _storage(tensor: torch.Tensor) -> int:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return local.untyped_storage().data_ptr()


def _unshared(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU tensors of `state` that share no memory with the live model: merging LoRA edits them in place.
    A one-process state dict holds the live parameters themselves (so does a one-rank FSDP gather); a
    multi-rank gather is already a copy and is not copied again."""
    live = {_storage(p) for p in model.parameters()}
    return {
        k: v.detach().to("cpu", copy=_storage(v) in live)
        if not hasattr(v, "to_local")
        else v.full_tensor().cpu()
        for k, v in state.items()
    }


def _plain_copy(spec: TransformerConfig, state: dict[str, torch.Tensor], lora: LoraSettings) -> nn.Module:
    """A CPU model that takes over the tensors of `state` (CPU copies), LoRA merged; built on the meta device
    so no memory is spent twice."""
    with torch.device("meta"):
        plain = InContextTransformer.from_spec(spec)
    if lora.enabled:
        apply_lora(plain, lora)
    plain.load_state_dict(state, strict=True, assign=True)
    return merge_lora(plain)


def _save_pretrained(model: nn.Module, path: Path) -> Path:
    with staged_folder(path, marker="config.json", what="saved model", overwrite=True) as staging:
        model.save_pretrained(staging, safe_serialization=True)
    return path
