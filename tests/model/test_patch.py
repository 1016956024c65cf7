"""Patch resizing: over latents constant on each patch the resized embedding gives the old tokens, the output
layer gives the mean of the old outputs, and resizing there and back restores the weights."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from retake.model import build_transformer
from retake.model.layers import unpatchify
from retake.model.patch import resize_patches

# (patch_size_t, patch_size) before and after: finer, coarser, and in time as well as space
CHANGES = [((1, 2), (1, 1)), ((1, 1), (1, 2)), ((1, 2), (2, 1)), ((2, 2), (1, 1))]


def _blocky(channels: int, block: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """(1, C, 4, 8, 8) latents constant on each (bt, b, b) block."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, channels, 4 // block[0], 8 // block[1], 8 // block[2], generator=g)
    return coarse.repeat_interleave(block[0], 2).repeat_interleave(block[1], 3).repeat_interleave(block[2], 4)


def _tokens_per_latent(tokens: torch.Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]):
    """(1, N, D) tokens -> (D, 4, 8, 8): each latent position holds the token of the patch covering it."""
    per_patch = tokens[0].T.reshape(-1, *grid)
    for axis, size in enumerate(patch, start=1):
        per_patch = per_patch.repeat_interleave(size, axis)
    return per_patch


@pytest.mark.parametrize(("old", "new"), CHANGES)
def test_over_patch_constant_latents_the_resized_embedding_gives_the_old_tokens(old, new):
    model = build_transformer("tiny", seed=1, conditioning="channel", patch_size_t=old[0], patch_size=old[1])
    resized = resize_patches(model, patch_size=new[1], patch_size_t=new[0])
    assert (resized.config.patch_size_t, resized.config.patch_size) == new  # saves as the resized model
    old_patch, new_patch = (old[0], old[1], old[1]), (new[0], new[1], new[1])
    block = tuple(max(a, b) for a, b in zip(old_patch, new_patch, strict=True))
    latents = _blocky(8, block)  # the channel mode's [noisy, source] input
    with torch.no_grad():
        per_old = _tokens_per_latent(
            model.x_embedder(latents),
            tuple(8 // p if i else 4 // p for i, p in enumerate(old_patch)),
            old_patch,
        )
        per_new = _tokens_per_latent(
            resized.x_embedder(latents),
            tuple(8 // p if i else 4 // p for i, p in enumerate(new_patch)),
            new_patch,
        )
    torch.testing.assert_close(per_new, per_old, atol=1e-5, rtol=1e-5)


def test_a_finer_output_layer_gives_the_mean_of_the_old_outputs_of_its_positions():
    model = build_transformer("tiny", seed=1, conditioning="channel")  # 1x2x2 patches
    model.proj_out.weight.data.normal_()  # not the zero-initialised last layer
    model.proj_out.bias.data.normal_()
    resized = resize_patches(model, patch_size=1, patch_size_t=1)
    hidden = torch.randn(1, 2 * 4 * 4, model.spec.attention_head_dim * model.spec.num_attention_heads)
    with torch.no_grad():
        coarse = unpatchify(model.proj_out(hidden), (2, 4, 4), 1, 2)  # (1, C, 2, 8, 8)
        fine = unpatchify(resized.proj_out(hidden), (2, 4, 4), 1, 1)  # (1, C, 2, 4, 4)
    torch.testing.assert_close(fine, F.avg_pool3d(coarse, (1, 2, 2)), atol=1e-5, rtol=1e-5)


def test_resizing_up_and_back_down_restores_every_weight():
    model = build_transformer("tiny", seed=3, conditioning="sequence", patch_size=1)
    model.proj_out.weight.data.normal_()
    back = resize_patches(resize_patches(model, patch_size=2, patch_size_t=2), patch_size=1, patch_size_t=1)
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], weight, atol=1e-6, rtol=1e-6, msg=name)
    same = resize_patches(model, patch_size=1, patch_size_t=1)
    assert all(torch.equal(same.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_patch_below_one_is_refused():
    with pytest.raises(ValueError, match="patch_size=0"):
        resize_patches(build_transformer("tiny", seed=0), patch_size=0, patch_size_t=1)


def test_a_fractional_patch_is_refused_by_name():
    with pytest.raises(ValueError, match=r"patch_size must be an integer, got 2\.5"):
        resize_patches(build_transformer("tiny", seed=0), patch_size=2.5, patch_size_t=1)
