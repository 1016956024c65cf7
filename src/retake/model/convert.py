"""Import (and export) the original HunyuanVideo / ICVE checkpoint layout.

The original model (Tencent-Hunyuan/HunyuanVideo `hyvideo/modules/models.py`, also ICVE's) names its weights
`img_in`, `txt_in`, `time_in`, `vector_in`, `guidance_in`, `double_blocks.N.*`, `single_blocks.N.*`,
`final_layer`, and fuses projections that diffusers (and retake) keep apart:

- `*_attn_qkv` / `self_attn_qkv` hold q, k and v stacked on the output dim;
- `single_blocks.N.linear1` holds q, k, v and the MLP input projection, `linear2` the joint output projection;
- `final_layer.adaLN_modulation.1` emits (shift, scale) where diffusers' `AdaLayerNormContinuous` wants
  (scale, shift): the halves swap.

`key_rules` spells out the whole mapping once; import and export both read it, so every original key is used
exactly once in either direction. The token refiner has no QK norm in the original (qk_norm=False), so there
are no `self_attn_q_norm` weights to map.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from retake.files import check_replaceable_folder, staged_folder
from retake.model.checkpoints import CheckpointError, check_state_dict
from retake.model.config import Conditioning, TransformerConfig
from retake.model.presets import build_transformer, get_preset
from retake.model.weights import check_safetensors

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
# Wrappers training code puts around the model's own keys (DeepSpeed/DDP, EMA, ComfyUI, torch.compile).
WRAPPER_PREFIXES = (
    "module.",
    "model.diffusion_model.",
    "diffusion_model.",
    "model.",
    "transformer.",
    "_orig_mod.",
)
SIBLING_WRAPPERS = ("module", "ema")  # DeepSpeed checkpoints may hold both; `load_key` picks one
_WHAT = "converted model folder"  # what `--overwrite` may replace


@dataclass(frozen=True)
class KeyRule:
    """One original tensor <-> one or more retake tensors concatenated on dim 0 (in `parts` order)."""

    original: str
    parts: tuple[str, ...]
    swap_halves: bool = False  # (shift, scale) <-> (scale, shift)


def _linear(original: str, *parts: str, swap: bool = False) -> list[KeyRule]:
    return [KeyRule(f"{original}.{p}", tuple(f"{q}.{p}" for q in parts), swap) for p in ("weight", "bias")]


def _norm(original: str, ours: str) -> list[KeyRule]:
    return [KeyRule(f"{original}.weight", (f"{ours}.weight",))]


def _refiner_rules(index: int) -> list[KeyRule]:
    o, r = (
        f"txt_in.individual_token_refiner.blocks.{index}",
        f"context_embedder.token_refiner.refiner_blocks.{index}",
    )
    return [
        *_linear(f"{o}.norm1", f"{r}.norm1"),
        *_linear(f"{o}.self_attn_qkv", f"{r}.attn.to_q", f"{r}.attn.to_k", f"{r}.attn.to_v"),
        *_linear(f"{o}.self_attn_proj", f"{r}.attn.to_out.0"),
        *_linear(f"{o}.norm2", f"{r}.norm2"),
        *_linear(f"{o}.mlp.fc1", f"{r}.ff.net.0.proj"),
        *_linear(f"{o}.mlp.fc2", f"{r}.ff.net.2"),
        *_linear(f"{o}.adaLN_modulation.1", f"{r}.norm_out.linear"),
    ]


def _double_rules(index: int) -> list[KeyRule]:
    o, r = f"double_blocks.{index}", f"transformer_blocks.{index}"
    a = f"{r}.attn"
    return [
        *_linear(f"{o}.img_mod.linear", f"{r}.norm1.linear"),
        *_linear(f"{o}.img_attn_qkv", f"{a}.to_q", f"{a}.to_k", f"{a}.to_v"),
        *_norm(f"{o}.img_attn_q_norm", f"{a}.norm_q"),
        *_norm(f"{o}.img_attn_k_norm", f"{a}.norm_k"),
        *_linear(f"{o}.img_attn_proj", f"{a}.to_out.0"),
        *_linear(f"{o}.img_mlp.fc1", f"{r}.ff.net.0.proj"),
        *_linear(f"{o}.img_mlp.fc2", f"{r}.ff.net.2"),
        *_linear(f"{o}.txt_mod.linear", f"{r}.norm1_context.linear"),
        *_linear(f"{o}.txt_attn_qkv", f"{a}.add_q_proj", f"{a}.add_k_proj", f"{a}.add_v_proj"),
        *_norm(f"{o}.txt_attn_q_norm", f"{a}.norm_added_q"),
        *_norm(f"{o}.txt_attn_k_norm", f"{a}.norm_added_k"),
        *_linear(f"{o}.txt_attn_proj", f"{a}.to_add_out"),
        *_linear(f"{o}.txt_mlp.fc1", f"{r}.ff_context.net.0.proj"),
        *_linear(f"{o}.txt_mlp.fc2", f"{r}.ff_context.net.2"),
    ]


def _single_rules(index: int) -> list[KeyRule]:
    o, r = f"single_blocks.{index}", f"single_transformer_blocks.{index}"
    return [
        *_linear(f"{o}.linear1", f"{r}.attn.to_q", f"{r}.attn.to_k", f"{r}.attn.to_v", f"{r}.proj_mlp"),
        *_linear(f"{o}.linear2", f"{r}.proj_out"),
        *_norm(f"{o}.q_norm", f"{r}.attn.norm_q"),
        *_norm(f"{o}.k_norm", f"{r}.attn.norm_k"),
        *_linear(f"{o}.modulation.linear", f"{r}.norm.linear"),
    ]


def key_rules(spec: TransformerConfig) -> list[KeyRule]:
    """The complete original <-> retake key mapping for a config."""
    refiner = "context_embedder.time_text_embed"
    rules = [
        *_linear("img_in.proj", "x_embedder.proj"),
        *_linear("txt_in.input_embedder", "context_embedder.proj_in"),
        *_linear("txt_in.t_embedder.mlp.0", f"{refiner}.timestep_embedder.linear_1"),
        *_linear("txt_in.t_embedder.mlp.2", f"{refiner}.timestep_embedder.linear_2"),
        *_linear("txt_in.c_embedder.linear_1", f"{refiner}.text_embedder.linear_1"),
        *_linear("txt_in.c_embedder.linear_2", f"{refiner}.text_embedder.linear_2"),
        *_linear("time_in.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
        *_linear("time_in.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
        *_linear("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
        *_linear("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
        *_linear("final_layer.linear", "proj_out"),
        *_linear("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True),
    ]
    if spec.guidance_embeds:
        rules += _linear("guidance_in.mlp.0", "time_text_embed.guidance_embedder.linear_1")
        rules += _linear("guidance_in.mlp.2", "time_text_embed.guidance_embedder.linear_2")
    for i in range(spec.num_refiner_layers):
        rules += _refiner_rules(i)
    for i in range(spec.num_layers):
        rules += _double_rules(i)
    for i in range(spec.num_single_layers):
        rules += _single_rules(i)
    return rules


def _swap_halves(t: Tensor) -> Tensor:
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def import_tensor(rule: KeyRule, tensor: Tensor, shapes: Mapping[str, torch.Size]) -> dict[str, Tensor]:
    """Original tensor -> retake tensors (cloned, so no two outputs share storage)."""
    if rule.swap_halves:
        tensor = _swap_halves(tensor)
    sizes = [shapes[p][0] for p in rule.parts]
    if sum(sizes) != tensor.shape[0]:
        raise CheckpointError(
            f"{rule.original} has {tensor.shape[0]} rows, expected {sum(sizes)} for {rule.parts}"
        )
    return {p: t.clone() for p, t in zip(rule.parts, tensor.split(sizes, dim=0), strict=True)}


def export_tensor(rule: KeyRule, parts: list[Tensor]) -> Tensor:
    """Retake tensors -> the original fused tensor."""
    fused = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0].clone()
    return _swap_halves(fused) if rule.swap_halves else fused


def to_original(state: Mapping[str, Tensor], spec: TransformerConfig) -> dict[str, Tensor]:
    """A retake (diffusers-layout) state dict -> the original HunyuanVideo/ICVE layout."""
    check_state_dict(_expected(spec), state)
    return {r.original: export_tensor(r, [state[p] for p in r.parts]) for r in key_rules(spec)}


def from_original(state: Mapping[str, Tensor], spec: TransformerConfig) -> dict[str, Tensor]:
    """An original-layout state dict (already unwrapped) -> retake's; every key must be used exactly once."""
    rules = key_rules(spec)
    _check_original_keys(rules, state.keys())
    shapes = _expected(spec)
    out: dict[str, Tensor] = {}
    for rule in rules:
        out.update(import_tensor(rule, state[rule.original], shapes))
    check_state_dict(shapes, out)
    return out


def _check_original_keys(rules: list[KeyRule], keys: Iterable[str]) -> None:
    wanted, present = {r.original for r in rules}, set(keys)
    missing, unexpected = sorted(wanted - present), sorted(present - wanted)
    if missing or unexpected:
        raise CheckpointError(
            f"original checkpoint does not match the config: missing {len(missing)} keys {missing[:8]}, "
            f"unexpected {len(unexpected)} keys {unexpected[:8]}"
        )


def _expected(spec: TransformerConfig) -> dict[str, torch.Size]:
    model = build_transformer(spec, device="meta")
    return {k: v.shape for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------------------------------------
# reading original checkpoints
# ----------------------------------------------------------------------------------------------------------
def wrapper_prefix(keys: Iterable[str], load_key: str = "module") -> str:
    """The prefix that wraps the model's own keys ("" when none), e.g. "module." or "model.diffusion_model."."""
    keys = list(keys)
    prefix = ""
    tops = {k.split(".", 1)[0] for k in keys}
    if len(tops) > 1 and tops <= set(SIBLING_WRAPPERS):
        if load_key not in tops:
            raise CheckpointError(f"checkpoint holds {sorted(tops)}, not the requested load_key {load_key!r}")
        prefix = f"{load_key}."
    while not any(k.startswith(prefix + "img_in.") for k in keys):
        inner = [k[len(prefix) :] for k in keys if k.startswith(prefix)]
        step = next((p for p in WRAPPER_PREFIXES if inner and all(k.startswith(p) for k in inner)), None)
        if step is None:
            break  # not wrapped in a way we know; the key check names what is missing
        prefix += step
    return prefix


def infer_spec(shapes: Mapping[str, tuple[int, ...]], base: TransformerConfig) -> TransformerConfig:
    """Sizes read off an original-layout checkpoint; RoPE and the conditioning modes come from `base`."""
    sizes = _read_sizes(shapes)
    if sum(base.rope_axes_dim) != sizes["attention_head_dim"]:
        raise CheckpointError(
            f"the checkpoint's head dim is {sizes['attention_head_dim']} but the base preset's RoPE axes "
            f"{base.rope_axes_dim} sum to {sum(base.rope_axes_dim)}; pick a preset whose rope_axes_dim fits (--preset NAME, e.g. --preset tiny)"
        )
    return replace(base, **sizes)


def _read_sizes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    try:
        hidden, in_channels, pt, ph, pw = shapes["img_in.proj.weight"]  # Conv3d (D, C, pt, p, p)
        (head_dim,) = _first(
            shapes, "double_blocks.0.img_attn_q_norm.weight", "single_blocks.0.q_norm.weight"
        )
        out_rows = shapes["final_layer.linear.weight"][0]
        text_dim = shapes["txt_in.input_embedder.weight"][1]
        pooled_dim = shapes["vector_in.in_layer.weight"][1]
    except KeyError as exc:
        raise CheckpointError(f"not an original HunyuanVideo checkpoint: no {exc.args[0]!r}") from None
    if ph != pw:
        raise CheckpointError(f"img_in.proj has a non-square spatial patch {(ph, pw)}")
    if "double_blocks.0.img_mlp.fc1.weight" in shapes:
        mlp_rows = shapes["double_blocks.0.img_mlp.fc1.weight"][0]
    else:  # linear1 stacks q, k, v and the MLP input
        mlp_rows = shapes["single_blocks.0.linear1.weight"][0] - 3 * hidden
    return {
        "in_channels": in_channels,
        "out_channels": out_rows // (pt * ph * pw),
        "num_attention_heads": hidden // head_dim,
        "attention_head_dim": head_dim,
        "num_layers": _count(shapes, r"double_blocks\.(\d+)\."),
        "num_single_layers": _count(shapes, r"single_blocks\.(\d+)\."),
        "num_refiner_layers": _count(shapes, r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."),
        "mlp_ratio": mlp_rows / hidden,
        "patch_size": ph,
        "patch_size_t": pt,
        "guidance_embeds": any(k.startswith("guidance_in.") for k in shapes),
        "text_embed_dim": text_dim,
        "pooled_projection_dim": pooled_dim,
    }


def _first(shapes: Mapping[str, tuple[int, ...]], *keys: str) -> tuple[int, ...]:
    for key in keys:
        if key in shapes:
            return shapes[key]
    raise KeyError(keys[0])


def _count(shapes: Iterable[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


# ----------------------------------------------------------------------------------------------------------
# the converter
# ----------------------------------------------------------------------------------------------------------
def convert_icve_checkpoint(
    src: Path | str,
    out_dir: Path | str,
    *,
    base: str | TransformerConfig = "hunyuan-13b",
    attention: str | None = None,
    load_key: str = "module",
    max_shard_bytes: int = 5 * 1024**3,
    overwrite: bool = False,
    progress: bool = True,
) -> TransformerConfig:
    """Convert an original-layout .safetensors checkpoint (HunyuanVideo T2V or ICVE) into a directory that
    `InContextTransformer.from_pretrained(out_dir)` loads: config.json plus (sharded) safetensors.

    Sizes are read from the checkpoint; RoPE, conditioning and attention come from `base` (a preset name or
    config; `attention` overrides it). Tensors are read, split and written one at a time, so memory holds at
    most one shard. Returns the config written.
    """
    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    if src.is_dir():
        raise ValueError(f"{src} is a folder; give the checkpoint's .safetensors file")
    if not src.is_file():
        raise FileNotFoundError(f"checkpoint not found: {src}")
    if src.suffix != ".safetensors":
        raise ValueError(f"only .safetensors checkpoints are read (no pickles), got {src.name}")
    check_replaceable_folder(out_dir, marker="config.json", what=_WHAT, overwrite=overwrite)
    base_spec = get_preset(base) if isinstance(base, str) else base
    if attention is not None:
        base_spec = replace(base_spec, attention=attention)
    if base_spec.conditioning is Conditioning.CHANNEL:
        raise ValueError("convert into a 'sequence' model, then widen it with load_t2v_into_channel")
    check_safetensors(src)  # a cut-short file: a message naming it, not the reader's bare header error
    with safe_open(src, framework="pt") as reader:
        names = list(reader.keys())
        prefix = wrapper_prefix(names, load_key)
        shapes = {
            k[len(prefix) :]: tuple(reader.get_slice(k).get_shape()) for k in names if k.startswith(prefix)
        }
        spec = infer_spec(shapes, base_spec)
        rules = key_rules(spec)
        _check_original_keys(rules, shapes)
        _write_directory(reader, prefix, rules, spec, out_dir, max_shard_bytes, progress)
    return spec


def _write_directory(
    reader,
    prefix: str,
    rules: list[KeyRule],
    spec: TransformerConfig,
    out_dir: Path,
    shard_bytes: int,
    progress: bool,
) -> None:
    """Write into a temporary sibling directory and rename it into place, so a crash leaves no half output.
    `out_dir` was checked by the caller: it is free, or a converted model folder to replace."""
    with staged_folder(out_dir, marker="config.json", what=_WHAT, overwrite=True) as tmp:
        model = build_transformer(spec, device="meta")
        model.save_config(tmp)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        check_state_dict(
            shapes, {p: torch.empty(shapes.get(p, 0), device="meta") for r in rules for p in r.parts}
        )
        shards = _write_shards(reader, prefix, rules, shapes, tmp, shard_bytes, progress)
        _name_shards(tmp, shards)


def _write_shards(
    reader,
    prefix: str,
    rules: list[KeyRule],
    shapes: Mapping[str, torch.Size],
    tmp: Path,
    limit: int,
    progress: bool,
) -> list[tuple[list[str], int]]:
    """Import rule by rule into shards of at most `limit` bytes; returns (keys, bytes) per shard."""
    shards: list[tuple[list[str], int]] = []
    pending: dict[str, Tensor] = {}
    size = 0

    def flush() -> None:
        nonlocal pending, size
        if pending:
            save_file(pending, tmp / f"shard-{len(shards)}.safetensors", metadata={"format": "pt"})
            shards.append((sorted(pending), size))
            pending, size = {}, 0

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("converting", total=len(rules))
        for rule in rules:
            for key, tensor in import_tensor(rule, reader.get_tensor(prefix + rule.original), shapes).items():
                if tuple(tensor.shape) != tuple(shapes[key]):
                    raise CheckpointError(
                        f"{key} {tuple(tensor.shape)} != {tuple(shapes[key])} (from {rule.original})"
                    )
                nbytes = tensor.numel() * tensor.element_size()
                if pending and size + nbytes > limit:
                    flush()
                pending[key] = tensor
                size += nbytes
            bar.advance(task)
        flush()
    return shards


def _name_shards(tmp: Path, shards: list[tuple[list[str], int]]) -> None:
    """Rename shard-i files to diffusers' names, with an index when there is more than one."""
    if len(shards) == 1:
        os.replace(tmp / "shard-0.safetensors", tmp / WEIGHTS_NAME)
        return
    weight_map = {}
    for i, (keys, _) in enumerate(shards):
        name = WEIGHTS_NAME.replace(".safetensors", f"-{i + 1:05d}-of-{len(shards):05d}.safetensors")
        os.replace(tmp / f"shard-{i}.safetensors", tmp / name)
        weight_map.update(dict.fromkeys(keys, name))
    total = sum(nbytes for _, nbytes in shards)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
