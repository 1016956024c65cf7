"""Presets and the typed config: the 13B parameter count, flatland-s, validation and seeded builds."""

from __future__ import annotations

import pytest
import torch
from diffusers import HunyuanVideoTransformer3DModel

from retake.model import TransformerConfig, build_transformer, get_preset

HUNYUAN_13B_PARAMETERS = 12_821_012_544


def test_hunyuan_13b_on_meta_matches_diffusers_default() -> None:
    model = build_transformer("hunyuan-13b", device="meta")
    assert sum(p.numel() for p in model.parameters()) == HUNYUAN_13B_PARAMETERS
    with torch.device("meta"):
        reference = HunyuanVideoTransformer3DModel()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert model.spec.inner_dim == 3072 and model.spec.rope_axes_dim == (16, 56, 56)


def test_flatland_s_builds_with_any_latent_channels() -> None:
    model = build_transformer("flatland-s", in_channels=8, seed=0)
    p = model.config.patch_size  # the preset's (2x2 patches of the editor VAE's latents)
    assert model.x_embedder.proj.weight.shape[1] == 8 and model.proj_out.out_features == 8 * p * p
    assert sum(model.spec.rope_axes_dim) == model.spec.attention_head_dim == 32
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = model(
            torch.randn(1, 8, 2, 8, 8, generator=g),
            torch.tensor([500.0]),
            torch.randn(1, 5, 384, generator=g),  # MiniLM token states
            torch.ones(1, 5, dtype=torch.long),
            torch.randn(1, 384, generator=g),
            source=torch.randn(1, 8, 2, 8, 8, generator=g),
        )
    assert out.shape == (1, 8, 2, 8, 8) and torch.isfinite(out).all()


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'nope'.*hunyuan-13b"):
        get_preset("nope")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attention": "one-way", "conditioning": "channel"}, "one-way"),
        ({"rope_axes_dim": (4, 6, 8)}, "summing to attention_head_dim"),
        ({"attention": "sideways"}, "attention must be one of"),
        ({"source_time_offset": 3, "conditioning": "none"}, "source_time_offset"),
        ({"prior": "source", "conditioning": "none"}, "prior 'source' needs a source"),
        ({"prior": "source", "source_time_offset": 2}, "source_time_offset=2"),
        ({"prior": "uniform"}, "prior must be one of"),
        ({"prediction": "epsilon"}, "prediction must be one of"),
        ({"prediction": "residual", "conditioning": "none"}, "prediction 'residual' needs a source"),
        ({"prediction": "residual", "source_time_offset": 2}, "source_time_offset=2"),
        ({"prediction": "residual", "attention": "one-way"}, "needs attention 'full'"),
        ({"prediction": "residual", "out_channels": 8}, "out_channels equal to in_channels"),
        # counts that built a model silently (no blocks for -1) or failed inside torch (2.0)
        ({"num_layers": -1}, "num_layers must be >= 0, got -1"),
        ({"num_single_layers": 2.0}, "num_single_layers must be an integer, got 2.0"),
        ({"num_refiner_layers": -2}, "num_refiner_layers must be >= 0, got -2"),
        ({"text_embed_dim": 0}, "text_embed_dim must be >= 1, got 0"),
        ({"pooled_projection_dim": True}, "pooled_projection_dim must be an integer, got True"),
        # 0 meant in_channels through `out_channels or in_channels`; None is the one spelling of that
        ({"out_channels": 0}, r"out_channels must be None \(same as in_channels\) or >= 1, got 0"),
        ({"mlp_ratio": float("nan")}, "mlp_ratio must be finite"),
        ({"heads": 3}, r"unknown TransformerConfig fields \['heads'\] for preset 'tiny'"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_preset("tiny", **overrides)


def test_config_survives_json_types() -> None:
    spec = get_preset("tiny", attention="one-way", prior="source")
    again = TransformerConfig(**{**spec.to_kwargs(), "rope_axes_dim": list(spec.rope_axes_dim)})
    assert again == spec and isinstance(again.rope_axes_dim, tuple)


def test_seed_gives_the_same_weights_without_touching_global_rng() -> None:
    state = torch.random.get_rng_state()
    a, b = build_transformer("tiny", seed=3), build_transformer("tiny", seed=3)
    c = build_transformer("tiny", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(a.proj_out.weight, c.proj_out.weight)
