"""The training objective: t sampling, interpolation, velocity target, losses and source noise."""

from __future__ import annotations

import math

import pytest
import torch

from retake.flow import (
    flow_loss,
    frame_weights,
    interpolate,
    noise_source,
    sample_t,
    shift_sigmas,
    velocity_target,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sample_t_is_logit_normal_with_the_given_moments():
    t = sample_t(20_000, generator=_gen(), mean=0.5, std=0.8)
    assert t.shape == (20_000,)
    assert bool(((t > 0) & (t < 1)).all())
    logit = torch.log(t / (1 - t))
    assert logit.mean().item() == pytest.approx(0.5, abs=0.03)
    assert logit.std().item() == pytest.approx(0.8, abs=0.03)


def test_sample_t_is_reproducible_and_shift_is_applied_after_sampling():
    a = sample_t(64, generator=_gen(3), device="cpu")
    b = sample_t(64, generator=_gen(3), device="cpu")
    torch.testing.assert_close(a, b)
    shifted = sample_t(64, generator=_gen(3), shift=5.0)
    torch.testing.assert_close(shifted, shift_sigmas(a, 5.0))
    assert shifted.mean() > a.mean()


def test_sample_t_rejects_bad_arguments():
    with pytest.raises(ValueError, match="0"):
        sample_t(0, generator=_gen())
    with pytest.raises(ValueError, match="-1"):
        sample_t(4, generator=_gen(), std=-1.0)
    with pytest.raises(ValueError, match=r"batch must be an integer, got 2\.0"):
        sample_t(2.0, generator=_gen())
    with pytest.raises(ValueError, match="mean must be finite"):
        sample_t(2, generator=_gen(), mean=math.nan)


def test_interpolate_endpoints_and_per_sample_t():
    x0, noise = torch.randn(3, 4, 2, 5, 5), torch.randn(3, 4, 2, 5, 5)
    torch.testing.assert_close(interpolate(x0, noise, torch.zeros(3)), x0)
    torch.testing.assert_close(interpolate(x0, noise, torch.ones(3)), noise)
    t = torch.tensor([0.0, 0.25, 1.0])
    xt = interpolate(x0, noise, t)
    torch.testing.assert_close(xt[1], 0.75 * x0[1] + 0.25 * noise[1])
    torch.testing.assert_close(interpolate(x0, noise, torch.tensor(0.5)), 0.5 * (x0 + noise))


def test_velocity_target_is_the_time_derivative_of_the_path():
    x0, noise = (
        torch.randn(2, 3, 1, 4, 4, dtype=torch.float64),
        torch.randn(2, 3, 1, 4, 4, dtype=torch.float64),
    )
    t, h = torch.tensor([0.3, 0.7], dtype=torch.float64), 1e-6
    numeric = (interpolate(x0, noise, t + h) - interpolate(x0, noise, t)) / h
    torch.testing.assert_close(numeric, velocity_target(x0, noise))
    torch.testing.assert_close(velocity_target(x0, noise), noise - x0)


def test_interpolate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        interpolate(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="shapes differ"):
        interpolate(torch.zeros(2, 4), torch.zeros(2, 5), torch.zeros(2))


def test_flow_loss_is_mse_without_weights():
    pred, target = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    torch.testing.assert_close(flow_loss(pred, target), torch.nn.functional.mse_loss(pred, target))
    torch.testing.assert_close(
        flow_loss(pred, target, frame_weights=frame_weights(3)), torch.nn.functional.mse_loss(pred, target)
    )


def test_decay_frame_weights_reproduce_insvie_frame_loss():
    b, f, mix = 2, 4, 0.3
    pred, target = torch.randn(b, 4, f, 3, 3), torch.randn(b, 4, f, 3, 3)
    w = frame_weights(f, kind="decay", mix=mix)
    err = (pred - target) ** 2
    per_frame = err.mean(dim=(0, 1, 3, 4))
    # InsViE: fw * mean_i(loss_i * (1 - i/T)^2) + (1 - fw) * mean(loss)
    expected = mix * sum(per_frame[i] * (1 - i / f) ** 2 for i in range(f)) / f + (1 - mix) * err.mean()
    torch.testing.assert_close(flow_loss(pred, target, frame_weights=w), expected)


def test_frame_weights_values():
    torch.testing.assert_close(frame_weights(3), torch.ones(3))
    w = frame_weights(4, kind="decay")
    torch.testing.assert_close(w, torch.tensor([1.0, 0.5625, 0.25, 0.0625]))
    assert bool((w[1:] < w[:-1]).all())
    with pytest.raises(ValueError, match="'linear'"):
        frame_weights(4, kind="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"1\.5"):
        frame_weights(4, kind="decay", mix=1.5)


def test_masked_loss_ignores_everything_outside_the_mask():
    pred, target = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 3, 4, 4)
    mask = torch.zeros(2, 1, 3, 4, 4, dtype=torch.bool)
    mask[:, :, :, :2] = True
    loss = flow_loss(pred, target, mask=mask)
    torch.testing.assert_close(loss, ((pred - target) ** 2)[:, :, :, :2].mean())
    changed = pred.clone()
    changed[:, :, :, 2:] += 100.0
    torch.testing.assert_close(flow_loss(changed, target, mask=mask), loss)
    with pytest.raises(ValueError, match="no elements"):
        flow_loss(pred, target, mask=torch.zeros_like(mask))


def test_flow_loss_rejects_bad_shapes():
    x = torch.zeros(1, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="shapes differ"):
        flow_loss(x, torch.zeros(1, 2, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        flow_loss(x, x, frame_weights=torch.ones(5))
    with pytest.raises(ValueError, match=r"mask \(1, 1, 2, 4, 4\) does not broadcast to the loss"):
        flow_loss(x, x, mask=torch.ones(1, 1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"element_weights \(7,\) does not broadcast"):
        flow_loss(x, x, element_weights=torch.ones(7))


def test_velocity_target_and_frame_weights_refuse_bad_arguments():
    with pytest.raises(ValueError, match=r"shapes differ: \(2, 4\) vs \(1, 4\)"):
        velocity_target(torch.zeros(2, 4), torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"num_frames must be an integer, got 2\.5"):
        frame_weights(2.5)
    with pytest.raises(ValueError, match="power must be >= 0, got -1"):
        frame_weights(3, kind="decay", power=-1)


def test_noise_source_sigma_is_log_normal_and_reproducible():
    source = torch.zeros(4000, 1, 1, 16, 16)
    noisy = noise_source(source, generator=_gen(1))
    torch.testing.assert_close(noisy, noise_source(source, generator=_gen(1)))
    log_sigma = noisy.flatten(1).std(dim=1).log()
    assert log_sigma.mean().item() == pytest.approx(-3.0, abs=0.05)
    assert log_sigma.std().item() == pytest.approx(0.5, abs=0.05)
    # light: the source survives almost intact
    src = torch.randn(2, 4, 2, 8, 8, generator=_gen(2))
    assert (noise_source(src, generator=_gen(3)) - src).abs().mean() < 0.2 * src.abs().mean()


def test_noise_source_with_zero_spread_uses_the_exact_sigma():
    source = torch.zeros(2, 3, 1, 32, 32)
    noisy = noise_source(source, generator=_gen(), log_sigma_mean=math.log(0.1), log_sigma_std=0.0)
    assert noisy.flatten(1).std(dim=1).tolist() == pytest.approx([0.1, 0.1], rel=0.1)
