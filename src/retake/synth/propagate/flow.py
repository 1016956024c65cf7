"""The classical propagator: the source's optical flow carries the edited first frame through the clip.

For every frame t a map C_t says where each pixel of frame t was in frame 0. Two estimates are made from
DIS flow (retake.opticalflow): the chain of backward flows t -> t-1 (composing coordinates rather than
images, so the edit is resampled once per frame and never blurred by repeated warping), and the direct flow
t -> 0 (no drift, but fails on large displacements). The chain is trusted where every link passes the
forward-backward check; the direct flow where it passes the check and frame 0 seen through it matches frame
t within `match_error` grey levels. A pixel takes a trusted estimate (the better match when both are); it
counts as tracked when it has one, or when its estimate matches within `match_error` anyway (motion too
fast or deforming for the checks), except in specks too small to be a surface.

With the edit residual R = E_0 - S_0 (edited minus source first frame) the output is

    O_t = (1 - a w_t) (S_t + R(C_t)) + a w_t E_0(C_t)

where w_t is the (carried) share of the pixel that the edit changed and a = `texture_weight`: unedited
pixels get the source's own frame t (its lighting, noise and detail; R is 0 there), edited ones the edit's
texture carried along the source's motion. A pixel without a trusted correspondence that stayed inside the
frame (occluded in frame 0, or moving too fast or deforming for the flow) takes the motion of its trusted
neighbours (multi-scale normalised convolution), so a hole in a tracked edit is still edited. Content that
came into view from outside the frame has no frame-0 counterpart: it gets the edit residual of its
neighbours within `fill_sigma` only (a seam, not an edit) and the source beyond.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retake.opticalflow import FlowConfig, check_video, consistency_mask, flow_pairs, in_bounds
from retake.synth.propagate import Request
from retake.synth.recipes import PropagationConfig

_SQUARE = np.ones((3, 3), np.uint8)
MIN_FLOW_SIDE = 128  # px: smaller clips get their flow computed on an upscaled copy


@dataclass(frozen=True)
class FlowPropagation:
    """video: (F, H, W, 3) uint8, frame 0 = the edited first frame. edit: (F, H, W) float32 in [0, 1], the
    share of each pixel the edit changed, carried along. tracked: (F, H, W) bool, pixels with a trusted
    correspondence to frame 0."""

    video: np.ndarray
    edit: np.ndarray
    tracked: np.ndarray

    @property
    def coverage(self) -> float:
        """Share of pixels (all frames) that had a trusted correspondence to frame 0."""
        return float(self.tracked.mean())


@dataclass(frozen=True)
class Correspondence:
    """Where each pixel of every frame was in frame 0: coords (F, H, W, 2) float32 (x, y); tracked (F, H, W)
    bool where that was measured and trusted; entered (F, H, W) bool where the content came into view from
    outside the frame after frame 0 (it has no frame-0 position). Elsewhere (occluded, or motion too hard to
    measure) coords hold the motion of the trusted neighbours, interpolated."""

    coords: np.ndarray
    tracked: np.ndarray
    entered: np.ndarray


def correspond(frames: np.ndarray, flow: FlowConfig, match_error: float = 6.0) -> Correspondence:
    """Maps from every frame of a (F, H, W, 3) uint8 clip to frame 0: chained and direct flow, fused."""
    frames = check_video(frames, "source")
    count, height, width = frames.shape[:3]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.stack([xs, ys], axis=-1)  # (H, W, 2)
    coords = np.empty((count, height, width, 2), np.float32)
    tracked = np.empty((count, height, width), bool)
    entered = np.zeros((count, height, width), bool)
    coords[0], tracked[0] = grid, True
    if count == 1:
        return Correspondence(coords, tracked, entered)
    backward = _flow(frames[1:], frames[:-1], flow)  # (F-1, H, W, 2): t -> t-1
    forward = _flow(frames[:-1], frames[1:], flow)  # (F-1, H, W, 2): t-1 -> t
    firsts = np.repeat(frames[:1], count - 1, axis=0)
    direct = _flow(frames[1:], firsts, flow)  # (F-1, H, W, 2): t -> 0
    direct_back = _flow(firsts, frames[1:], flow)  # (F-1, H, W, 2): 0 -> t
    smooth = np.stack([cv2.GaussianBlur(f.astype(np.float32), (0, 0), 1.0) for f in frames])  # (F, H, W, 3)
    chain_ok = np.ones((height, width), bool)
    outside = np.zeros((height, width), bool)  # the chain left the frame: came into view later
    for t in range(1, count):
        step = backward[t - 1]
        map_x, map_y = xs + step[..., 0], ys + step[..., 1]
        # C_t(x) = C_{t-1}(x + b_t(x)): bilinear on coordinates is exact inside a smoothly moving region;
        # where it blends across a motion edge, the consistency check fails anyway.
        chained = cv2.remap(coords[t - 1], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        link_ok = consistency_mask(step, forward[t - 1], flow.fb_alpha, flow.fb_beta) & in_bounds(step)
        carried = cv2.remap(
            chain_ok.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        chain_ok = (carried > 0.99) & link_ok
        came_in = cv2.remap(
            outside.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        outside = (came_in > 0.5) | ~in_bounds(step)
        straight = grid + direct[t - 1]
        direct_ok = consistency_mask(direct[t - 1], direct_back[t - 1], flow.fb_alpha, flow.fb_beta)
        direct_ok &= in_bounds(direct[t - 1])
        chain_err = _match_error(smooth[0], smooth[t], chained)
        direct_err = _match_error(smooth[0], smooth[t], straight)
        # A long jump is easy to get wrong and still pass the round trip (DIS on fine texture): the direct
        # estimate is trusted only where frame 0 also looks like frame t through it.
        direct_ok &= direct_err < match_error
        # Prefer a checked estimate; between two checked (or two unchecked) ones, the better match.
        take_direct = np.where(direct_ok == chain_ok, direct_err < chain_err, direct_ok)
        coords[t] = np.where(take_direct[..., None], straight, chained)
        # Where neither passes its check (fast or deforming motion), an estimate under which frame 0 looks
        # like frame t is still better than none.
        matched = np.where(take_direct, direct_err, chain_err) < match_error
        # Isolated trusted pixels inside untrusted areas are chance matches; their residual would spread.
        trusted = (chain_ok | direct_ok | (matched & ~outside)).astype(np.uint8)
        tracked[t] = cv2.morphologyEx(trusted, cv2.MORPH_OPEN, _SQUARE) > 0
        entered[t] = outside & ~tracked[t]
        holes = ~tracked[t] & ~entered[t]
        if holes.any() and tracked[t].any():
            moved = _interpolate(coords[t] - grid, tracked[t], min(height, width) / 64)
            coords[t] = np.where(holes[..., None], grid + moved, coords[t])
    return Correspondence(coords, tracked, entered)


def _flow(first: np.ndarray, second: np.ndarray, flow: FlowConfig) -> np.ndarray:
    """`flow_pairs` (N, H, W, 2), computed on copies upscaled to at least MIN_FLOW_SIDE px when the clip is
    smaller: DIS matches 8 px patches over a pyramid, which a 64 px clip is too small to build."""
    height, width = first.shape[1:3]
    scale = int(np.ceil(MIN_FLOW_SIDE / max(height, width)))
    if scale <= 1:
        return flow_pairs(first, second, flow)
    size = (width * scale, height * scale)
    big = [np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in v]) for v in (first, second)]
    fine = flow_pairs(big[0], big[1], FlowConfig(flow.preset, None, flow.fb_alpha, flow.fb_beta))
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) / scale for f in fine])


def _match_error(first: np.ndarray, frame: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(H, W) mean absolute difference between `frame` and frame 0 sampled at `coords` (both (H, W, 3))."""
    warped = cv2.remap(
        first, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.abs(warped - frame).mean(axis=-1)


def edit_weight(source: np.ndarray, edited: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much the edit changed each pixel; a smooth ramp from threshold/2 to
    threshold grey levels (largest channel difference), so codec noise counts as unedited."""
    diff = np.abs(edited.astype(np.float32) - source.astype(np.float32)).max(axis=-1)
    diff = cv2.GaussianBlur(diff, (0, 0), 1.0)
    return np.clip((diff - threshold / 2) / (threshold / 2), 0.0, 1.0)


def _interpolate(values: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """values (H, W, C) float32 known where `known` (H, W) bool; every other pixel gets the Gaussian-weighted
    mean of the known ones at the finest of the scales sigma, 2 sigma, 4 sigma ... with support there
    (multi-scale normalised convolution: small holes take their near neighbours, big ones a wider mean)."""
    out = values.copy()
    todo = ~known
    weight = known.astype(np.float32)
    scale = max(sigma, 1.0)
    while todo.any() and scale <= 2 * max(values.shape[:2]):
        support = cv2.GaussianBlur(weight, (0, 0), scale)
        spread = cv2.GaussianBlur(values * weight[..., None], (0, 0), scale).reshape(values.shape)
        ready = todo & (support > 0.05)
        out[ready] = spread[ready] / support[ready][:, None]
        todo &= ~ready
        scale *= 2
    return out


def _fill(values: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """values (H, W, C) float32 known where `known` (H, W) bool; elsewhere the Gaussian-weighted mean of the
    known neighbours, faded by how much known support there is (none far from any known pixel)."""
    weight = known.astype(np.float32)
    support = cv2.GaussianBlur(weight, (0, 0), sigma)  # (H, W)
    spread = cv2.GaussianBlur(values * weight[..., None], (0, 0), sigma)
    spread = spread.reshape(values.shape)  # GaussianBlur drops a trailing axis of size 1
    filled = spread / np.maximum(support, 1e-6)[..., None]
    fade = np.clip(support / 0.25, 0.0, 1.0)[..., None]  # full strength with a quarter of the window known
    return np.where(known[..., None], values, filled * fade)


def propagate_flow(
    source: np.ndarray, edited_first: np.ndarray, config: PropagationConfig = PropagationConfig()
) -> FlowPropagation:
    """Carry `edited_first` (H, W, 3) uint8 through `source` (F, H, W, 3) uint8 along the source's motion."""
    source = check_video(source, "source")
    if edited_first.shape != source.shape[1:] or edited_first.dtype != np.uint8:
        raise ValueError(
            f"edited_first must be uint8 {source.shape[1:]} like a source frame, got "
            f"{edited_first.dtype} {edited_first.shape}"
        )
    flow = FlowConfig(preset=config.flow_preset, max_side=config.flow_max_side)
    maps = correspond(source, flow)
    first = source[0].astype(np.float32)
    edited = edited_first.astype(np.float32)
    # Warped together: the residual (3), the edited picture (3) and the edit weight (1), (H, W, 7).
    stack = np.concatenate(
        [edited - first, edited, edit_weight(source[0], edited_first, config.edit_threshold)[..., None]],
        axis=-1,
    )
    video = np.empty_like(source)
    weights = np.empty(source.shape[:3], np.float32)
    for t, (coords, entered) in enumerate(zip(maps.coords, maps.entered, strict=True)):
        moved = cv2.remap(
            stack, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        known = ~entered  # tracked, or given its neighbours' motion
        residual = _fill(moved[..., :3], known, config.fill_sigma)  # fades into what came into view
        weight = np.where(known, moved[..., 6], 0.0)[..., None] * config.texture_weight
        frame = source[t].astype(np.float32)
        out = (1 - weight) * (frame + residual) + weight * moved[..., 3:6]
        video[t] = np.clip(out, 0, 255).round().astype(np.uint8)
        weights[t] = _fill(moved[..., 6:7], known, config.fill_sigma)[..., 0]
    video[0] = edited_first  # exact: the chosen edited frame is the first frame of the result
    return FlowPropagation(video, weights, maps.tracked)


def repeat_first(source: np.ndarray, edited_first: np.ndarray) -> np.ndarray:
    """The naive baseline: the edited first frame held for the whole clip, (F, H, W, 3) uint8."""
    return np.repeat(edited_first[None], len(source), axis=0)


class FlowPropagator:
    """`propagate_flow` as a factory propagator."""

    name = "flow"

    def __init__(self, config: PropagationConfig) -> None:
        self.config = config

    def propagate(self, request: Request) -> np.ndarray:
        return propagate_flow(request.source, request.edited_first, self.config).video
