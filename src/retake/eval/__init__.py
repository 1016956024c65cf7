"""Evaluation metrics for video edits, one per module; `evaluate_edit` computes all that apply.

Videos are uint8 (F, H, W, 3) RGB arrays (or `retake.video.Video`s); masks are (F, H, W) bool, True = edited.
The CLIP scorer imports transformers, so it is loaded lazily: `from retake.eval.clip_score import ClipScorer`.
"""

from retake.eval.flicker import brightness_flicker, flicker
from retake.eval.metrics import METRICS, EvalConfig, MetricInfo, evaluate_edit
from retake.eval.motion import MotionFidelity, compare_flows, motion_fidelity
from retake.eval.preservation import Preservation, preservation
from retake.eval.psnr import MAX_PSNR_DB, psnr
from retake.eval.quality import Exposure, ExposureConfig, exposure, sharpness
from retake.eval.ssim import ssim, ssim_map
from retake.eval.vlm_judge import JudgeConfig, Judgement, VLMJudge
from retake.eval.warp_error import warp_error, warp_errors

__all__ = [
    "MAX_PSNR_DB",
    "METRICS",
    "EvalConfig",
    "Exposure",
    "ExposureConfig",
    "JudgeConfig",
    "Judgement",
    "MetricInfo",
    "MotionFidelity",
    "Preservation",
    "VLMJudge",
    "brightness_flicker",
    "compare_flows",
    "evaluate_edit",
    "exposure",
    "flicker",
    "motion_fidelity",
    "preservation",
    "psnr",
    "sharpness",
    "ssim",
    "ssim_map",
    "warp_error",
    "warp_errors",
]
