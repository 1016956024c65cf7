"""Loading the heavy models the factory calls (diffusers pipelines, retake bundles) from local directories,
once per worker process: a shard after the first reuses what the process has already loaded. torch and the
model stacks are imported on first use, so a pipeline that calls no model (flow, oracles) never pays for it."""

from __future__ import annotations

import html
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=2)
def diffusers_pipeline(path: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """A diffusers pipeline saved at `path` (its model_index.json picks the class); safetensors only."""
    from diffusers import DiffusionPipeline

    from retake.sample.pipeline import resolve_dtype

    root = Path(path).expanduser()
    if not (root / "model_index.json").is_file():
        raise FileNotFoundError(f"no diffusers pipeline at {root} (model_index.json missing)")
    pipeline = DiffusionPipeline.from_pretrained(
        root, dtype=resolve_dtype(dtype), local_files_only=True, use_safetensors=True
    )
    pipeline.set_progress_bar_config(disable=True)  # the factory shows its own progress
    return pipeline.to(device)


@lru_cache(maxsize=2)
def edit_bundle(path: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """A retake editor bundle (retake.sample.EditPipeline) saved at `path`."""
    from retake.sample.pipeline import EditPipeline

    return EditPipeline.from_pretrained(path, device=device, dtype=dtype)


def to_pil(image: np.ndarray) -> Image.Image:
    """(H, W, 3) uint8 RGB -> PIL image (what diffusers pipelines take)."""
    return Image.fromarray(np.ascontiguousarray(image))


def to_uint8(images: Any) -> np.ndarray:
    """A diffusers "np" output (float in [0, 1], (..., H, W, 3)) -> uint8 of the same shape."""
    array = np.asarray(images, dtype=np.float32)
    return np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)


def cpu_generator(seed: int) -> torch.Generator:
    """Noise is drawn on the CPU (diffusers moves it to the device), so a seed gives the same result anywhere."""
    import torch

    return torch.Generator("cpu").manual_seed(int(seed) % 2**63)


def fit_multiple(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(H, W) rounded to the nearest multiples of `multiple` (at least one multiple each)."""
    return tuple(max(multiple, round(s / multiple) * multiple) for s in size)  # type: ignore[return-value]


WAN_MAX_TOKENS = 512  # the Wan pipelines' default max_sequence_length


def text_inputs(pipeline: Any, prompt: str, negative_prompt: str = "") -> dict[str, Any]:
    """The prompt keyword arguments for a diffusers video pipeline call.

    Wan pipelines clean prompts with `ftfy`, which retake does not depend on; without it they fail, so their
    T5 embeddings are made here the way they make them (tokens padded to 512, the encoder's states past the
    prompt's length zeroed), from whitespace- and HTML-cleaned text. Other pipelines take the strings.
    """
    module = type(pipeline).__module__
    if not module.startswith("diffusers.pipelines.wan") or importlib.util.find_spec("ftfy") is not None:
        return {"prompt": prompt, "negative_prompt": negative_prompt or None}
    return {
        "prompt_embeds": _t5_embeds(pipeline, prompt),
        "negative_prompt_embeds": _t5_embeds(pipeline, negative_prompt),
        "max_sequence_length": WAN_MAX_TOKENS,
    }


def _t5_embeds(pipeline: Any, text: str) -> torch.Tensor:
    """(1, WAN_MAX_TOKENS, D) T5 states of `text`, zero past its tokens (Wan's prompt encoding)."""
    import torch

    text = " ".join(html.unescape(html.unescape(text)).split())
    tokens = pipeline.tokenizer(
        [text],
        padding="max_length",
        max_length=WAN_MAX_TOKENS,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    device = pipeline.text_encoder.device
    states = pipeline.text_encoder(
        tokens.input_ids.to(device), tokens.attention_mask.to(device)
    ).last_hidden_state
    keep = tokens.attention_mask.to(device).bool()[..., None]  # (1, L, 1)
    return torch.where(keep, states, torch.zeros_like(states)).to(pipeline.transformer.dtype)
