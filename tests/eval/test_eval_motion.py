"""Motion fidelity: the edit's flow against the source's flow where the source moves."""

from __future__ import annotations

import numpy as np
import pytest

from retake.eval.motion import compare_flows, motion_fidelity


def constant_flow(dx: float, dy: float) -> np.ndarray:
    return np.broadcast_to(np.array([dx, dy], np.float32), (2, 6, 8, 2)).copy()


def test_closed_forms_on_constant_flows():
    source = constant_flow(1, 0)
    same, faster, turned, reversed_, still = (
        compare_flows(source, constant_flow(dx, dy)) for dx, dy in [(1, 0), (2, 0), (0, 1), (-1, 0), (0, 0)]
    )
    assert (same.epe, same.relative_epe, same.cosine, same.moving_fraction) == (0.0, 0.0, 1.0, 1.0)
    assert faster.epe == pytest.approx(1.0) and faster.cosine == pytest.approx(1.0)
    assert turned.epe == pytest.approx(np.sqrt(2)) and turned.cosine == pytest.approx(0.0)
    assert reversed_.epe == pytest.approx(2.0) and reversed_.cosine == pytest.approx(-1.0)
    assert still.relative_epe == pytest.approx(1.0) and still.cosine == 0.0


def test_only_pixels_where_the_source_moves_count():
    source = constant_flow(0, 0)
    source[:, :3] = [3.0, 4.0]  # half the rows move at speed 5
    edited = np.zeros_like(source)
    edited[:, 3:] = [9.0, 9.0]  # motion where the source is still is not judged
    result = compare_flows(source, edited)
    assert result.moving_fraction == 0.5 and result.epe == pytest.approx(5.0) and result.relative_epe == 1.0
    static = compare_flows(constant_flow(0.1, 0), constant_flow(0.1, 0))
    assert static.moving_fraction == 0.0 and np.isnan(static.epe) and np.isnan(static.cosine)


def test_identical_edit_is_perfect(moving):
    result = motion_fidelity(moving, moving)
    assert result.epe == 0.0 and result.cosine == pytest.approx(1.0) and result.moving_fraction > 0.9


def test_colour_change_is_near_perfect(moving):
    result = motion_fidelity(moving, moving[..., ::-1].copy())
    assert result.cosine > 0.99 and result.relative_epe < 0.05


def test_frozen_edit_is_poor(moving):
    result = motion_fidelity(moving, np.repeat(moving[:1], len(moving), axis=0))
    assert result.cosine < 0.1 and result.relative_epe > 0.9


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="same"):
        compare_flows(constant_flow(1, 0), constant_flow(1, 0)[:1])
    with pytest.raises(ValueError, match="min_motion"):
        compare_flows(constant_flow(1, 0), constant_flow(1, 0), min_motion=0.0)
    with pytest.raises(ValueError, match="min_motion must be finite"):
        compare_flows(constant_flow(1, 0), constant_flow(1, 0), min_motion=float("nan"))


def test_precomputed_flows_must_match_the_videos(moving):
    small = np.zeros((len(moving) - 1, 8, 8, 2), np.float32)  # flows of some other, smaller video
    with pytest.raises(ValueError, match=r"source_flow must have shape \(F-1, H, W, 2\)"):
        motion_fidelity(moving, moving, source_flow=small, edited_flow=small)
