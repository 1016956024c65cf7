"""Flow matching: the training objective, sigma schedules, guidance strategies, solvers and the denoise loop."""

from retake.flow.denoise import Predict, Step, denoise
from retake.flow.guidance import (
    ICVE_NEGATIVE_PROMPT,
    Branch,
    Guidance,
    NoGuidance,
    PinnedFrames,
    TextCFG,
    TextVideoGuidance,
    constant,
    cosine_ramp,
    linear,
)
from retake.flow.objective import (
    flow_loss,
    flow_start,
    frame_weights,
    interpolate,
    noise_source,
    sample_t,
    velocity_target,
)
from retake.flow.schedule import TIMESTEP_SCALE, shift_sigmas, sigma_schedule, to_timestep
from retake.flow.solvers import euler_step

__all__ = [
    "ICVE_NEGATIVE_PROMPT",
    "TIMESTEP_SCALE",
    "Branch",
    "Guidance",
    "NoGuidance",
    "PinnedFrames",
    "Predict",
    "Step",
    "TextCFG",
    "TextVideoGuidance",
    "constant",
    "cosine_ramp",
    "denoise",
    "euler_step",
    "flow_loss",
    "flow_start",
    "frame_weights",
    "interpolate",
    "linear",
    "noise_source",
    "sample_t",
    "shift_sigmas",
    "sigma_schedule",
    "to_timestep",
    "velocity_target",
]
