"""The factory's measurements and thresholds: the first filter on sources (sharpness, exposure, motion) and the
second filter on edited videos (frame quality, artefact frames, and motion against the source's).

Each check is a pure function from pixels to named numbers (`*_metrics`), and one from numbers and a config
to a (reason, detail) verdict (`*_reason`, None when it passes), so stages stay thin and tests can probe
each threshold.
"""

from __future__ import annotations

import numpy as np

from retake.eval.motion import compare_flows
from retake.eval.quality import exposure, sharpness
from retake.eval.warp_error import warp_errors
from retake.opticalflow import FlowConfig, VideoFlow, flow_between
from retake.synth.recipes import QualityConfig, SourceConfig

Verdict = tuple[str, str] | None  # (reason, detail), or None when the check passes


def frame_metrics(frames: np.ndarray) -> dict[str, float]:
    """Mean sharpness (variance of the Laplacian), mean luma and clipped share of a (F, H, W, 3) uint8 clip."""
    light = exposure(frames)
    return {
        "sharpness": float(sharpness(frames).mean()),
        "luma": float(light.mean.mean()),
        "clipped": float(light.clipped_fraction.mean()),
    }


def motion_metric(frames: np.ndarray, max_side: int) -> float:
    """Mean flow magnitude per frame step over the frame diagonal (0 for a single frame): resolution-free
    "share of the picture moved per frame", the curation pipeline's measure."""
    if len(frames) < 2:
        return 0.0
    flow = flow_between(frames, FlowConfig(preset="ultrafast", max_side=max_side))  # (F-1, H, W, 2)
    return float(np.linalg.norm(flow, axis=-1).mean() / np.hypot(frames.shape[1], frames.shape[2]))


def source_reason(metrics: dict[str, float], config: SourceConfig, *, still: bool) -> Verdict:
    """Why a source fails the first filter (`metrics`: frame_metrics plus "motion" for videos), or None."""
    # Exposure first: a dark or washed-out frame also has little detail, and that is not blur.
    if not config.min_luma <= metrics["luma"] <= config.max_luma:
        return "exposure", f"mean luma {metrics['luma']:.1f} not in [{config.min_luma}, {config.max_luma}]"
    if metrics["clipped"] > config.max_clipped:
        return "clipped", f"clipped share {metrics['clipped']:.2f} > {config.max_clipped}"
    if metrics["sharpness"] < config.min_sharpness:
        return "blurry", f"sharpness {metrics['sharpness']:.1f} < {config.min_sharpness}"
    if still:
        return None
    if metrics["motion"] < config.min_motion:
        return "low_motion", f"motion {metrics['motion']:.4f} < {config.min_motion}"
    if metrics["motion"] > config.max_motion:
        return "high_motion", f"motion {metrics['motion']:.4f} > {config.max_motion}"
    return None


def edit_metrics(
    source: np.ndarray,
    edited: np.ndarray,
    source_flow: VideoFlow,
    source_quality: dict[str, float],
    source_warp_error: float,
    flow: FlowConfig,
) -> dict[str, float]:
    """The second filter's numbers for an edited clip against its source (same shape, F >= 2 for motion).

    source_flow: `video_flow(source)`; source_quality: `frame_metrics(source)`; source_warp_error: the
    source's own warp error under its flow (what a perfectly consistent edit would score).
    """
    quality = frame_metrics(edited)
    metrics = {
        "sharpness_ratio": quality["sharpness"] / max(source_quality["sharpness"], 1e-6),
        "luma": quality["luma"],
        "clipped": quality["clipped"],
        "source_warp_error": source_warp_error,
    }
    if len(source) < 2:
        return metrics
    errors = warp_errors(edited, source_flow)  # (F-1,) per frame pair
    finite = errors[np.isfinite(errors)]
    if finite.size:
        metrics["warp_error"] = float(finite.mean())
        metrics["warp_spike"] = float(finite.max() / max(float(np.median(finite)), 1e-3))
    fidelity = compare_flows(source_flow.forward, flow_between(edited, flow))
    if np.isfinite(fidelity.relative_epe):  # NaN when the source does not move: nothing to follow
        metrics["relative_epe"] = fidelity.relative_epe
        metrics["motion_cosine"] = fidelity.cosine
    return metrics


def edit_reason(metrics: dict[str, float], config: QualityConfig) -> Verdict:
    """Why an edited clip fails the second filter, or None."""
    if not config.min_luma <= metrics["luma"] <= config.max_luma:
        return "exposure", f"mean luma {metrics['luma']:.1f} not in [{config.min_luma}, {config.max_luma}]"
    if metrics["clipped"] > config.max_clipped:
        return "clipped", f"clipped share {metrics['clipped']:.2f} > {config.max_clipped}"
    if metrics["sharpness_ratio"] < config.min_sharpness_ratio:
        return "blurry", f"sharpness ratio {metrics['sharpness_ratio']:.2f} < {config.min_sharpness_ratio}"
    if "warp_error" in metrics:
        limit = config.max_warp_error_ratio * (metrics["source_warp_error"] + config.warp_error_floor)
        if metrics["warp_error"] > limit:
            return "warp_error", f"warp error {metrics['warp_error']:.2f} > {limit:.2f}"
        if metrics["warp_spike"] > config.max_spike:
            return "artefact_frame", f"worst frame pair {metrics['warp_spike']:.1f}x the median warp error"
    if "relative_epe" in metrics:
        if metrics["relative_epe"] > config.max_relative_epe:
            return (
                "motion_mismatch",
                f"relative flow error {metrics['relative_epe']:.2f} > {config.max_relative_epe}",
            )
        if metrics["motion_cosine"] < config.min_motion_cosine:
            return (
                "motion_mismatch",
                f"flow cosine {metrics['motion_cosine']:.2f} < {config.min_motion_cosine}",
            )
    return None
