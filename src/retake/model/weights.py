"""Saved model folders checked before they load: the right class, and safetensors weights that are whole.

diffusers' `from_pretrained` reports a folder without weights as a missing `.bin` file and a cut-short
safetensors file as a bare header error from Rust; this names the folder, the part and what is wrong, and
catches both at assembly time too, not only when an edit starts.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from retake.errors import RetakeError

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = f"{WEIGHTS_NAME}.index.json"  # sharded weights: {"weight_map": {tensor: shard file}}


class WeightsError(RetakeError):
    """A saved model folder that cannot load: no or damaged weights, or a model of another class."""


def check_safetensors(path: Path) -> None:
    """WeightsError unless `path` is a safetensors file whose header is whole (reads the header only)."""
    try:
        with safe_open(path, framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); was it cut short?") from None


def check_model_folder(folder: Path, expected_class: str | None = None, *, weights: bool = True) -> Path:
    """`folder` if it holds a config.json (of `expected_class`, when given) and, unless `weights` is False,
    whole safetensors weights."""
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"no config.json in {folder}: not a saved model folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{config_path} is not readable JSON ({exc})") from None
    found = config.get("_class_name") if isinstance(config, dict) else None
    if expected_class is not None and found != expected_class:
        raise WeightsError(f"{folder} holds a {found!r}, expected a {expected_class}")
    for shard in _weight_files(folder) if weights else []:
        check_safetensors(shard)
    return folder


def _weight_files(folder: Path) -> list[Path]:
    if (folder / WEIGHTS_NAME).is_file():
        return [folder / WEIGHTS_NAME]
    index = folder / INDEX_NAME
    if not index.is_file():
        raise WeightsError(
            f"{folder} has no {WEIGHTS_NAME} (nor a sharded {INDEX_NAME}); retake loads safetensors weights only"
        )
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, json.JSONDecodeError, KeyError, AttributeError) as exc:
        raise WeightsError(f"{index} is not a readable shard index ({exc})") from None
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise WeightsError(f"{folder} lacks the weight shards {', '.join(missing)} that {INDEX_NAME} lists")
    return [folder / name for name in shards]


def quiet_loading_bars() -> None:
    """Turn off diffusers' and transformers' weight-loading progress bars in this process."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
