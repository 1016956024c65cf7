"""Reading transformer weights (safetensors only) and loading them with named missing/unexpected keys, including
the InsViE-style widening of a text-to-video checkpoint into a channel-conditioned model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from retake.errors import RetakeError

PATCH_WEIGHT = "x_embedder.proj.weight"


class CheckpointError(RetakeError):
    """Weights that do not fit the model: missing, unexpected or misshapen keys (named in the message)."""


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def read_state_dict(path: Path | str) -> dict[str, Tensor]:
    """All tensors of a .safetensors file, or of every .safetensors file in a (diffusers) directory."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no .safetensors files in {path}")
    elif path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        files = [path]
    else:
        raise ValueError(f"checkpoint must be a .safetensors file or a directory of them, got {path}")
    state: dict[str, Tensor] = {}
    for file in files:
        state.update(load_file(file))
    return state


def check_state_dict(expected: Mapping[str, torch.Size], state: Mapping[str, Tensor]) -> None:
    """Raise CheckpointError naming every missing, unexpected and wrongly shaped key."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k])}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k])
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys: {_names(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {_names(shapes)}")
    if problems:
        raise CheckpointError("; ".join(problems))


def load_weights(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Strict load that reports key names (rather than torch's long RuntimeError)."""
    check_state_dict({k: v.shape for k, v in model.state_dict().items()}, state)
    model.load_state_dict(state, strict=True)


def widen_patch_embedding(state: Mapping[str, Tensor], channels: int) -> dict[str, Tensor]:
    """A T2V state dict whose patch embedding takes `channels` inputs -> one taking [latent, source] (2x).

    The source half is zero, so the widened model ignores the source until trained (InsViE's initialisation).
    """
    weight = state[PATCH_WEIGHT]  # (D, C, pt, p, p)
    if weight.shape[1] != channels:
        raise CheckpointError(f"{PATCH_WEIGHT} has {weight.shape[1]} input channels, expected {channels}")
    return {**state, PATCH_WEIGHT: torch.cat([weight, torch.zeros_like(weight)], dim=1)}


def load_t2v_into_channel(model: nn.Module, checkpoint: Mapping[str, Tensor] | Path | str) -> None:
    """Load a text-to-video checkpoint (state dict, .safetensors file or diffusers directory) into a
    channel-conditioned `InContextTransformer`, zero-initialising the source half of the patch embedding."""
    spec = model.spec
    if str(spec.conditioning) != "channel":
        raise ValueError(
            f"load_t2v_into_channel needs a 'channel' model, got conditioning '{spec.conditioning}'"
        )
    state = checkpoint if isinstance(checkpoint, Mapping) else read_state_dict(checkpoint)
    load_weights(model, widen_patch_embedding(state, spec.in_channels))
