"""Sigma schedules against their closed forms."""

from __future__ import annotations

import pytest
import torch

from retake.flow import shift_sigmas, sigma_schedule, to_timestep


def test_unshifted_schedule_is_uniform_from_one_to_zero():
    sigmas = sigma_schedule(4)
    assert sigmas.shape == (5,)
    assert sigmas.dtype == torch.float32
    torch.testing.assert_close(sigmas, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


def test_shift_matches_closed_form_and_keeps_endpoints():
    sigmas = sigma_schedule(50, shift=7.0)
    assert sigmas.shape == (51,)
    assert sigmas[0].item() == 1.0 and sigmas[-1].item() == 0.0
    # the middle of the uniform grid (t = 0.5) moves to 7 * 0.5 / (1 + 6 * 0.5) = 0.875
    assert sigmas[25].item() == pytest.approx(0.875)
    u = torch.linspace(1, 0, 51)
    torch.testing.assert_close(sigmas, 7 * u / (1 + 6 * u))
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    # shift > 1 spends more of the steps at high noise
    assert bool((sigmas[1:-1] > u[1:-1]).all())


def test_shift_by_s_then_one_over_s_is_identity():
    s = torch.rand(100)
    torch.testing.assert_close(shift_sigmas(shift_sigmas(s, 3.0), 1 / 3.0), s)


def test_schedule_device_and_timestep_scale():
    sigmas = sigma_schedule(2, device="cpu")
    assert sigmas.device.type == "cpu"
    torch.testing.assert_close(to_timestep(sigmas), torch.tensor([1000.0, 500.0, 0.0]))


@pytest.mark.parametrize(("steps", "shift", "bad"), [(0, 1.0, "0"), (10, 0.0, "0.0"), (10, -2.0, "-2.0")])
def test_bad_arguments_name_the_value(steps, shift, bad):
    with pytest.raises(ValueError, match=bad):
        sigma_schedule(steps, shift=shift)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 3, "shift": float("nan")}, "shift must be finite"),
        ({"steps": 3, "shift": float("inf")}, "shift must be finite"),
        ({"steps": 3, "shift": 0.0}, "shift must be > 0"),
        ({"steps": 2.5}, "steps must be an integer, got 2.5"),
        ({"steps": 0}, "steps must be >= 1"),
    ],
)
def test_schedule_refuses_settings_that_would_give_nan_sigmas(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sigma_schedule(**kwargs)
