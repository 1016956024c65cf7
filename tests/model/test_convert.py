"""ICVE / original HunyuanVideo checkpoint import: key mapping, round trip through the original layout, wrapped
checkpoints, and the `retake convert icve` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import HunyuanVideoTransformer3DModel
from safetensors.torch import save_file
from typer.testing import CliRunner

from retake.cli import app
from retake.model import InContextTransformer, get_preset
from retake.model.checkpoints import CheckpointError
from retake.model.convert import (
    convert_icve_checkpoint,
    from_original,
    infer_spec,
    key_rules,
    to_original,
    wrapper_prefix,
)

SPEC = get_preset("tiny")


@pytest.fixture(scope="module")
def reference() -> HunyuanVideoTransformer3DModel:
    torch.manual_seed(0)
    return HunyuanVideoTransformer3DModel(**SPEC.diffusers_kwargs()).eval()


@pytest.fixture(scope="module")
def original(reference: HunyuanVideoTransformer3DModel) -> dict[str, torch.Tensor]:
    """The reference weights written out in the original HunyuanVideo/ICVE layout."""
    return to_original(reference.state_dict(), SPEC)


def outputs(model: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    args = (
        torch.randn(2, 4, 3, 4, 6, generator=g),
        torch.tensor([700.0, 30.0]),
        torch.randn(2, 6, 16, generator=g),
        torch.tensor([[1] * 6, [1] * 3 + [0] * 3]),
        torch.randn(2, 8, generator=g),
    )
    with torch.no_grad():
        out = model(*args, guidance=torch.tensor([1000.0, 1000.0]))
    return out.sample if hasattr(out, "sample") else out


def save_original(state: dict[str, torch.Tensor], path: Path, prefix: str = "") -> Path:
    save_file({prefix + k: v.contiguous() for k, v in state.items()}, path)
    return path


def test_original_key_names_follow_the_original_code(original: dict[str, torch.Tensor]) -> None:
    for key in (
        "img_in.proj.weight",
        "txt_in.input_embedder.weight",
        "txt_in.t_embedder.mlp.2.bias",
        "txt_in.c_embedder.linear_1.weight",
        "txt_in.individual_token_refiner.blocks.0.self_attn_qkv.weight",
        "txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.bias",
        "txt_in.individual_token_refiner.blocks.0.mlp.fc1.weight",
        "time_in.mlp.0.weight",
        "vector_in.in_layer.weight",
        "guidance_in.mlp.2.weight",
        "double_blocks.0.img_mod.linear.weight",
        "double_blocks.0.img_attn_qkv.bias",
        "double_blocks.0.txt_attn_k_norm.weight",
        "double_blocks.0.txt_mlp.fc2.weight",
        "single_blocks.0.linear1.weight",
        "single_blocks.0.modulation.linear.bias",
        "single_blocks.0.q_norm.weight",
        "final_layer.linear.weight",
        "final_layer.adaLN_modulation.1.weight",
    ):
        assert key in original, key
    hidden = SPEC.inner_dim
    assert original["double_blocks.0.img_attn_qkv.weight"].shape == (3 * hidden, hidden)
    assert original["single_blocks.0.linear1.weight"].shape == (3 * hidden + 4 * hidden, hidden)


def test_final_layer_swaps_shift_and_scale(reference, original) -> None:
    ours = reference.state_dict()["norm_out.linear.weight"]  # (scale, shift)
    theirs = original["final_layer.adaLN_modulation.1.weight"]  # (shift, scale)
    half = ours.shape[0] // 2
    assert torch.equal(theirs[:half], ours[half:]) and torch.equal(theirs[half:], ours[:half])


def test_round_trip_uses_every_key_once_and_matches_diffusers(reference, original) -> None:
    rules = key_rules(SPEC)
    assert len({r.original for r in rules}) == len(rules) == len(original)
    parts = [p for r in rules for p in r.parts]
    assert len(parts) == len(set(parts)) and set(parts) == set(reference.state_dict())
    converted = from_original(original, SPEC)
    assert all(torch.equal(converted[k], v) for k, v in reference.state_dict().items())
    model = InContextTransformer.from_spec(SPEC)
    model.load_state_dict(converted, strict=True)
    assert (outputs(model) - outputs(reference)).abs().max() <= 1e-5


def test_leftover_and_missing_keys_are_named(original) -> None:
    extra = {**original, "double_blocks.0.img_attn_extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="img_attn_extra"):
        from_original(extra, SPEC)
    short = {k: v for k, v in original.items() if k != "vector_in.out_layer.bias"}
    with pytest.raises(CheckpointError, match=r"vector_in\.out_layer\.bias"):
        from_original(short, SPEC)


def test_wrapper_prefixes_are_found() -> None:
    keys = ["img_in.proj.weight", "double_blocks.0.img_mod.linear.weight"]
    assert wrapper_prefix(keys) == ""
    assert wrapper_prefix([f"module.{k}" for k in keys]) == "module."
    assert wrapper_prefix([f"model.diffusion_model.{k}" for k in keys]) == "model.diffusion_model."
    both = [f"module.{k}" for k in keys] + [f"ema.{k}" for k in keys]
    assert wrapper_prefix(both, load_key="ema") == "ema."
    with pytest.raises(CheckpointError, match="load_key"):
        wrapper_prefix(both, load_key="other")


def test_infer_spec_reads_the_13b_sizes() -> None:
    from retake.model import build_transformer

    spec = get_preset("hunyuan-13b")
    meta = build_transformer(spec, device="meta").state_dict()
    shapes = {k: tuple(v.shape) for k, v in to_original(meta, spec).items()}
    base = get_preset("hunyuan-13b", num_layers=1, text_embed_dim=8, attention="one-way")
    assert infer_spec(shapes, base) == get_preset("hunyuan-13b", out_channels=16, attention="one-way")
    with pytest.raises(CheckpointError, match="RoPE axes"):
        infer_spec(shapes, get_preset("tiny"))


def test_converter_writes_a_loadable_sharded_directory(tmp_path: Path, reference, original) -> None:
    src = save_original(original, tmp_path / "icve.safetensors", prefix="module.")
    spec = convert_icve_checkpoint(src, tmp_path / "out", base="tiny", max_shard_bytes=30_000, progress=False)
    assert spec.num_layers == 1 and spec.guidance_embeds
    assert (tmp_path / "out" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    loaded = InContextTransformer.from_pretrained(tmp_path / "out")
    assert (outputs(loaded) - outputs(reference)).abs().max() <= 1e-5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_cli_convert_icve(tmp_path: Path, reference, original) -> None:
    src = save_original(original, tmp_path / "icve.safetensors")
    out = tmp_path / "converted"
    result = CliRunner().invoke(app, ["convert", "icve", str(src), str(out), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and (out / "diffusion_pytorch_model.safetensors").is_file()
    loaded = InContextTransformer.from_pretrained(out)
    assert loaded.config.attention == "full" and loaded.config.conditioning == "sequence"
    assert (outputs(loaded) - outputs(reference)).abs().max() <= 1e-5
    again = CliRunner().invoke(app, ["convert", "icve", str(src), str(out), "--preset", "tiny"])
    assert again.exit_code != 0 and isinstance(again.exception, FileExistsError)
