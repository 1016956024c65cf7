"""The `diffusers` propagator: an image-to-video pipeline (WanImageToVideoPipeline, CogVideoXImageToVideo-
Pipeline, ...) loaded from a local directory animates the edited first frame, prompted with the instruction.

Unlike `flow` it does not see the source's motion at all: it makes a plausible clip that starts at the
edited frame (InsViE's propagation), and the second filter keeps only clips whose motion follows the source.
"""

from __future__ import annotations

import numpy as np

from retake.synth.loading import (
    cpu_generator,
    diffusers_pipeline,
    fit_multiple,
    text_inputs,
    to_pil,
    to_uint8,
)
from retake.synth.propagate import Request
from retake.synth.propagate.model import fit_clip
from retake.synth.recipes import PropagationConfig

SIZE_MULTIPLE = 16  # Wan and CogVideoX need sides divisible by VAE stride x patch size (8 x 2)


class DiffusersPropagator:
    name = "diffusers"

    def __init__(self, config: PropagationConfig) -> None:
        self.config = config

    def propagate(self, request: Request) -> np.ndarray:
        pipeline = diffusers_pipeline(str(self.config.path), self.config.device, self.config.dtype)
        height, width = fit_multiple(request.source.shape[1:3], SIZE_MULTIPLE)
        result = pipeline(
            image=to_pil(request.edited_first),
            **text_inputs(pipeline, request.instruction),
            height=height,
            width=width,
            num_frames=len(request.source),
            num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance,
            generator=cpu_generator(request.seed),
            output_type="np",
        )
        frames = to_uint8(result.frames[0])  # (F, height, width, 3)
        return fit_clip(frames, request.source.shape, request.edited_first)
