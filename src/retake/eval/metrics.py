"""Every applicable metric for one edit, as a flat dict, plus a registry saying what each name means.

`evaluate_edit(source, edited, reference, mask, instruction, clip, judge)` computes optical flow once per
video and reuses it for warp error, flicker and motion fidelity; metrics whose inputs are missing are left
out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retake.eval._inputs import as_video, luma, same_shape
from retake.eval.flicker import brightness_flicker
from retake.eval.motion import MIN_MOTION_PX, compare_flows
from retake.eval.preservation import preservation
from retake.eval.psnr import MAX_PSNR_DB, psnr
from retake.eval.quality import ExposureConfig, exposure, sharpness
from retake.eval.ssim import ssim
from retake.eval.vlm_judge import VLMJudge
from retake.eval.warp_error import compensated_errors, mean_or_nan, warp_errors
from retake.opticalflow import FlowConfig, video_flow

if TYPE_CHECKING:  # transformers is slow to import; only CLIP users pay for it
    from retake.eval.clip_score import ClipScorer


@dataclass(frozen=True)
class EvalConfig:
    flow: FlowConfig = field(default_factory=FlowConfig)
    min_motion: float = MIN_MOTION_PX  # px per frame above which a source pixel counts as moving
    max_psnr_db: float = MAX_PSNR_DB
    exposure: ExposureConfig = field(default_factory=ExposureConfig)


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool
    needs: str  # what must be given besides source and edited ("" = nothing)
    description: str


METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo(True, "reference", "PSNR (dB, capped) of the edit against the reference target"),
    "ssim": MetricInfo(True, "reference", "luma SSIM of the edit against the reference target"),
    "preservation_psnr": MetricInfo(True, "mask", "PSNR (dB) against the source outside the edit mask"),
    "preservation_ssim": MetricInfo(True, "mask", "SSIM against the source, windows outside the edit mask"),
    "warp_error": MetricInfo(False, "", "edit warped along the source's flow, mean abs RGB error (0-255)"),
    "source_warp_error": MetricInfo(False, "", "the same for the source itself: the floor of warp_error"),
    "flicker": MetricInfo(False, "", "edit warped along its own flow, mean abs luma error (0-255)"),
    "source_flicker": MetricInfo(False, "", "the same for the source itself: the floor of flicker"),
    "brightness_flicker": MetricInfo(False, "", "mean abs change of the edit's mean luma between frames"),
    "motion_epe": MetricInfo(False, "", "flow endpoint error, edit vs source, where the source moves (px)"),
    "motion_relative_epe": MetricInfo(False, "", "motion_epe / mean source speed (~1 = frozen edit)"),
    "motion_cosine": MetricInfo(True, "", "cosine of edit and source flow vectors where the source moves"),
    "sharpness": MetricInfo(True, "", "mean variance of the Laplacian of the edit's luma"),
    "exposure_mean": MetricInfo(False, "", "mean luma of the edit (0-255; neither direction is better)"),
    "clipped_fraction": MetricInfo(
        False, "", "share of the edit's pixels crushed to black or blown to white"
    ),
    "clip_text_frame": MetricInfo(True, "clip, instruction", "mean CLIP cosine of instruction and frames"),
    "clip_frame_frame": MetricInfo(True, "clip", "mean CLIP cosine of consecutive edited frames"),
    "vlm_instruction": MetricInfo(
        True, "judge, instruction", "VLM judge: instruction following (0-3, EditVerseBench rubric)"
    ),
    "vlm_preservation": MetricInfo(True, "judge, instruction", "VLM judge: background consistency (0-3)"),
    "vlm_quality": MetricInfo(True, "judge, instruction", "VLM judge: edit quality (0-3)"),
    "vlm_overall": MetricInfo(True, "judge, instruction", "mean of the three VLM judge scores (0-3)"),
    "vlm_total": MetricInfo(True, "judge, instruction", "sum of the three VLM judge scores (0-9)"),
}


def _flow_metrics(source: Any, edited: Any, config: EvalConfig, progress: bool) -> dict[str, float]:
    """Warp error, flicker and motion fidelity from one flow computation per video."""
    source_flow = video_flow(source, config.flow, progress)
    edited_flow = video_flow(edited, config.flow, progress)
    motion = compare_flows(source_flow.forward, edited_flow.forward, config.min_motion)
    return {
        "warp_error": mean_or_nan(warp_errors(edited, source_flow)),
        "source_warp_error": mean_or_nan(warp_errors(source, source_flow)),
        "flicker": mean_or_nan(compensated_errors(luma(edited), edited_flow)),
        "source_flicker": mean_or_nan(compensated_errors(luma(source), source_flow)),
        "motion_epe": motion.epe,
        "motion_relative_epe": motion.relative_epe,
        "motion_cosine": motion.cosine,
    }


def _quality_metrics(edited: Any, config: EvalConfig) -> dict[str, float]:
    exposed = exposure(edited, config.exposure)
    return {
        "sharpness": float(sharpness(edited).mean()),
        "exposure_mean": float(exposed.mean.mean()),
        "clipped_fraction": float(exposed.clipped_fraction.mean()),
    }


def evaluate_edit(
    source: Any,
    edited: Any,
    reference: Any = None,
    mask: Any = None,
    instruction: str | None = None,
    clip: ClipScorer | None = None,
    judge: VLMJudge | None = None,
    config: EvalConfig = EvalConfig(),
    progress: bool = False,
) -> dict[str, float]:
    """All metrics of `METRICS` that the inputs allow, for one edit.

    source, edited, reference: uint8 (F, H, W, 3) of one shape (or `Video`s); mask: (F, H, W) bool, True =
    edited region; clip: a loaded `ClipScorer` (CLIP metrics are skipped without it); judge: a `VLMJudge`
    (needs the instruction; its VLMError propagates). Flow metrics need F >= 2.
    """
    if instruction is not None and not isinstance(instruction, str):
        raise ValueError(f"instruction must be one string, got {instruction!r}")
    if judge is not None and not instruction:
        raise ValueError("a VLM judge needs the instruction; got none")
    source, edited = as_video(source, "source"), as_video(edited, "edited")
    same_shape(source, edited, ("source", "edited"))
    results: dict[str, float] = {}
    if reference is not None:
        reference = as_video(reference, "reference")
        same_shape(reference, edited, ("reference", "edited"))
        results["psnr"] = psnr(reference, edited, max_db=config.max_psnr_db)
        results["ssim"] = ssim(reference, edited)
    if mask is not None:
        kept = preservation(source, edited, mask, max_db=config.max_psnr_db)
        results |= {"preservation_psnr": kept.psnr, "preservation_ssim": kept.ssim}
    if len(edited) > 1:
        results |= _flow_metrics(source, edited, config, progress)
        results["brightness_flicker"] = brightness_flicker(edited)
    results |= _quality_metrics(edited, config)
    if clip is not None:
        scores = clip.scores(edited, instruction)
        if scores.text_frame is not None:
            results["clip_text_frame"] = scores.text_frame
        if scores.frame_frame is not None:
            results["clip_frame_frame"] = scores.frame_frame
    if judge is not None:
        verdict = judge.judge(source, edited, instruction)
        results |= verdict.as_metrics()
    return results
