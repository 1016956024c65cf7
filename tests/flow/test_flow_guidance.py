"""Guidance strategies and scale schedules against their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from retake.flow import (
    ICVE_NEGATIVE_PROMPT,
    NoGuidance,
    PinnedFrames,
    TextCFG,
    TextVideoGuidance,
    constant,
    cosine_ramp,
    linear,
)


@pytest.fixture
def preds() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(2, 4, 3, 4, 4, generator=g) for name in ("full", "no_text", "none")}


def test_no_guidance_returns_the_conditional_prediction(preds):
    assert NoGuidance().branches == ("full",)
    assert NoGuidance().combine({"full": preds["full"]}, step=0, num_steps=1) is preds["full"]


def test_text_cfg_formula_and_degenerate_scales(preds):
    cfg = TextCFG(scale=6.0)
    assert cfg.branches == ("full", "no_text")
    expected = preds["no_text"] + 6.0 * (preds["full"] - preds["no_text"])
    torch.testing.assert_close(cfg.combine(preds, step=0, num_steps=50), expected)
    torch.testing.assert_close(TextCFG(scale=1.0).combine(preds, step=0, num_steps=1), preds["full"])
    torch.testing.assert_close(TextCFG(scale=0.0).combine(preds, step=0, num_steps=1), preds["no_text"])


def test_icve_preset_uses_scale_6_and_the_hunyuan_negative_prompt():
    cfg = TextCFG.icve()
    assert cfg.scale == 6.0
    assert cfg.negative_prompt == ICVE_NEGATIVE_PROMPT
    assert ICVE_NEGATIVE_PROMPT.startswith("Aerial view")


def test_text_video_guidance_is_the_instructpix2pix_form(preds):
    g = TextVideoGuidance()
    assert (g.text_scale, g.video_scale) == (7.5, 1.2)
    assert set(g.branches) == {"full", "no_text", "none"}
    e00, e0s, ets = preds["none"], preds["no_text"], preds["full"]
    expected = e00 + 1.2 * (e0s - e00) + 7.5 * (ets - e0s)
    torch.testing.assert_close(g.combine(preds, step=3, num_steps=50), expected)
    # unit scales give the fully conditioned branch; zero text scale keeps only video guidance
    torch.testing.assert_close(TextVideoGuidance(1.0, 1.0).combine(preds, step=0, num_steps=1), ets)
    torch.testing.assert_close(TextVideoGuidance(0.0, 1.0).combine(preds, step=0, num_steps=1), e0s)


def test_scale_schedules():
    assert constant(2.5)(7, 50) == 2.5
    lin = linear(1.0, 5.0)
    assert lin(0, 5) == 1.0 and lin(4, 5) == 5.0 and lin(2, 5) == 3.0
    assert lin(0, 1) == 1.0
    ramp = cosine_ramp(6.0)
    assert ramp(0, 50) == 1.0
    assert ramp(25, 50) == pytest.approx(1 + 6 * (1 - math.cos(math.pi * 0.5**5)) / 2)
    values = [ramp(i, 50) for i in range(50)]
    assert values == sorted(values) and values[-1] > 6.0
    for schedule in (ramp, lin):
        with pytest.raises(ValueError, match="step 0 of num_steps 0"):
            schedule(0, 0)
        with pytest.raises(ValueError, match="step 5 of num_steps 5"):
            schedule(5, 5)


def test_guidance_accepts_per_step_schedules(preds):
    cfg = TextCFG(scale=linear(1.0, 3.0))
    first = cfg.combine(preds, step=0, num_steps=3)
    last = cfg.combine(preds, step=2, num_steps=3)
    torch.testing.assert_close(first, preds["full"])
    torch.testing.assert_close(last, preds["no_text"] + 3.0 * (preds["full"] - preds["no_text"]))
    g = TextVideoGuidance(text_scale=constant(1.0), video_scale=linear(0.0, 1.0))
    torch.testing.assert_close(
        g.combine(preds, step=0, num_steps=2), preds["full"] - preds["no_text"] + preds["none"]
    )


def test_pinned_frames_keep_their_velocity_under_any_mix_of_branches() -> None:
    class Rescaled:  # a mix that is not affine (as CFG-rescale is not): a pin inside the branches would not survive
        branches = ("full", "no_text")

        def combine(self, preds, *, step=0, num_steps=1):
            return 2 * preds["full"] - preds["no_text"].mean() * preds["full"].std()

    preds = {"full": torch.randn(1, 4, 5, 2, 2), "no_text": torch.randn(1, 4, 5, 2, 2)}
    velocity = torch.randn(1, 4, 2, 2, 2)
    pinned = PinnedFrames(Rescaled(), velocity)
    mixed = pinned.combine(preds, step=0, num_steps=1)
    assert pinned.branches == ("full", "no_text")
    assert torch.equal(mixed[:, :, :2], velocity)
    assert torch.equal(mixed[:, :, 2:], Rescaled().combine(preds)[:, :, 2:])
