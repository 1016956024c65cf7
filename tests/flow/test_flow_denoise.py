"""The denoise loop: exact on straight paths, the right branches per step, schedules and callbacks."""

from __future__ import annotations

import math

import pytest
import torch

from retake.flow import (
    NoGuidance,
    Step,
    TextCFG,
    TextVideoGuidance,
    denoise,
    euler_step,
    interpolate,
    linear,
    sigma_schedule,
    velocity_target,
)


def test_euler_step_closed_form():
    x, v = torch.tensor([1.0, 2.0]), torch.tensor([4.0, -2.0])
    torch.testing.assert_close(euler_step(x, v, 1.0, 0.75), torch.tensor([0.0, 2.5]))


@pytest.mark.parametrize(("steps", "shift"), [(1, 1.0), (7, 1.0), (10, 7.0)])
def test_denoise_recovers_x0_exactly_with_the_true_velocity(steps, shift):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 3, 4, 4, generator=g)

    def predict(x, t, branch):
        # the straight path's velocity is constant, so Euler is exact whatever the step sizes
        assert branch == "full"
        return velocity_target(x0, noise)

    sigmas = sigma_schedule(steps, shift=shift)
    out = denoise(noise, sigmas, predict, NoGuidance(), progress=False)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def test_denoise_from_partial_noise_follows_the_same_path():
    x0, noise = torch.randn(1, 2, 1, 2, 2), torch.randn(1, 2, 1, 2, 2)
    sigmas = sigma_schedule(8)[4:]  # start at t = 0.5 (SDEdit-style)
    start = interpolate(x0, noise, torch.tensor([0.5]))
    out = denoise(start, sigmas, lambda x, t, b: noise - x0, NoGuidance(), progress=False)
    torch.testing.assert_close(out, x0)


def test_denoise_matches_euler_product_for_a_linear_ode():
    # v = x  =>  each Euler step multiplies x by (1 + t_next - t)
    sigmas = sigma_schedule(5, shift=3.0)
    x = torch.ones(1, 1, 1, 1, 1)
    out = denoise(x, sigmas, lambda x, t, b: x, NoGuidance(), progress=False)
    expected = math.prod(1 + (sigmas[i + 1] - sigmas[i]).item() for i in range(5))
    assert out.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("guidance", "branches"),
    [
        (NoGuidance(), {"full"}),
        (TextCFG(6.0), {"full", "no_text"}),
        (TextVideoGuidance(), {"full", "no_text", "none"}),
    ],
)
def test_denoise_asks_for_each_needed_branch_once_per_step(guidance, branches):
    calls: list[tuple[str, torch.Tensor]] = []

    def predict(x, t, branch):
        calls.append((branch, t.clone()))
        return torch.zeros_like(x)

    denoise(torch.randn(3, 2, 1, 2, 2), sigma_schedule(4), predict, guidance, progress=False)
    assert len(calls) == 4 * len(branches)
    assert {b for b, _ in calls} == branches
    for _, t in calls:
        assert t.shape == (3,) and t.dtype == torch.float32
    first_ts = [t[0].item() for b, t in calls if b == "full"]
    assert first_ts == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_per_step_guidance_scale_reaches_the_velocity():
    # full = 1, no_text = 0 -> guided velocity equals the step's scale
    seen: list[Step] = []
    values = {"full": 1.0, "no_text": 0.0}
    out = denoise(
        torch.zeros(1, 1, 1, 1, 1),
        sigma_schedule(4),
        lambda x, t, b: torch.full_like(x, values[b]),
        TextCFG(scale=linear(2.0, 8.0)),
        progress=False,
        callback=seen.append,
    )
    assert [s.index for s in seen] == [0, 1, 2, 3]
    assert [s.velocity.item() for s in seen] == pytest.approx([2.0, 4.0, 6.0, 8.0])
    assert [s.t for s in seen] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert [s.t_next for s in seen] == pytest.approx([0.75, 0.5, 0.25, 0.0])
    # x_next after the last step is the output: sum of -0.25 * scale
    assert out.item() == pytest.approx(-0.25 * (2 + 4 + 6 + 8))
    assert seen[-1].x_next.item() == out.item()


@pytest.mark.parametrize("sigmas", [torch.tensor([1.0]), torch.tensor([0.0, 1.0]), torch.ones(2, 2)])
def test_denoise_rejects_bad_sigmas(sigmas):
    with pytest.raises(ValueError, match="sigmas"):
        denoise(torch.zeros(1, 1), sigmas, lambda x, t, b: x, NoGuidance(), progress=False)


def test_euler_step_takes_each_samples_own_times():
    x, v = torch.zeros(2, 4, 3, 4, 2), torch.ones(2, 4, 3, 4, 2)  # W = B: a misaligned t would broadcast
    out = euler_step(x, v, torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.0]))
    assert out[0].unique().tolist() == [-0.5] and out[1].unique().tolist() == [-1.0]
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        euler_step(x, v, torch.ones(3), 0.0)


def test_denoise_refuses_a_velocity_not_shaped_like_x():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"velocity and x shapes differ: \(2, 1, 3\) vs \(2, 3\)"):
        denoise(x, sigma_schedule(2), lambda x, t, b: torch.zeros(2, 1, 3), NoGuidance(), progress=False)
    with pytest.raises(ValueError, match=r"\(3,\) vs \(2, 3\)"):
        denoise(x, sigma_schedule(2), lambda x, t, b: torch.zeros(3), NoGuidance(), progress=False)


def test_denoise_takes_sigmas_as_a_list_and_refuses_nan_ones():
    x = torch.ones(1, 2)
    out = denoise(x, [1.0, 0.5, 0.0], lambda x, t, b: torch.ones_like(x), NoGuidance(), progress=False)
    torch.testing.assert_close(out, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="sigmas must be finite"):
        denoise(x, torch.tensor([1.0, math.nan, 0.0]), lambda x, t, b: x, NoGuidance(), progress=False)
    with pytest.raises(ValueError, match="batched latents"):
        denoise(torch.tensor(1.0), [1.0, 0.0], lambda x, t, b: x, NoGuidance(), progress=False)
