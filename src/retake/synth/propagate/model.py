"""The `model` propagator: a retake editor bundle (retake.sample.EditPipeline) edits the source with the
instruction while its first latent frame is pinned to the chosen edited first frame.

The bundle has no first-frame input of its own, so the edited frame enters through the latent path (a
replacement, as in inpainting samplers: `EditPipeline.edit`'s `prefix`): the causal VAE encodes frame 0 alone
into latent frame 0, so the edited frame's latent z0 is (nearly: see `encode_prefix`) that frame's target.
Frame 0 follows its exact path to z0, and the model, which attends to it at every step, generates the other
frames consistent with it. The decoded frame 0 is finally replaced by the edited frame itself (the VAE round
trip is not exact).

What this cannot give: the model predicts every frame's velocity, frame 0's included, and only the sampler
holds frame 0 to its path, so the others follow it only as far as the model's own prediction of frame 0
agrees (the "replacement" method's known drift, Ho et al. 2022); the second filter checks the result.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from retake.checks import SEED_LIMIT
from retake.sample.pipeline import EditPipeline
from retake.synth.loading import edit_bundle
from retake.synth.propagate import Request
from retake.synth.recipes import PropagationConfig
from retake.video import Video, resize_cover_crop


@torch.no_grad()
def anchored_edit(
    pipeline: EditPipeline,
    source: Video,
    instruction: str,
    first: np.ndarray,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Edit `source` with `instruction`, latent frame 0 pinned to `first` (H, W, 3) uint8.

    Returns (F, h, w, 3) uint8 at the model's grid (frames 4k+1 and size rounded down by the pipeline).
    """
    latents = anchored_latents(
        pipeline, source, instruction, first, steps=steps, guidance=guidance, seed=seed
    )
    return pipeline.decode(latents)


@torch.no_grad()
def anchored_latents(
    pipeline: EditPipeline,
    source: Video,
    instruction: str,
    first: np.ndarray,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
) -> Tensor:
    """The denoised latents (1, C, F', h', w') of `anchored_edit`; latent frame 0 is the VAE latent of
    `first` (resized to the model's grid)."""
    size = pipeline.grid.fit_size((source.height, source.width))
    return pipeline.edit_latents(
        source,
        instruction,
        steps=steps,
        guidance=guidance,
        seed=seed,
        frames=source.num_frames,
        size=size,
        prefix=first[None],
        progress=False,
    )


class ModelPropagator:
    name = "model"

    def __init__(self, config: PropagationConfig) -> None:
        self.config = config

    def propagate(self, request: Request) -> np.ndarray:
        pipeline = edit_bundle(str(self.config.path), self.config.device, self.config.dtype)
        frames = anchored_edit(
            pipeline,
            Video(request.source, fps=request.fps),
            request.instruction,
            request.edited_first,
            steps=self.config.steps,
            guidance=self.config.guidance,
            # The factory's seeds are 63-bit hashes; the pipeline's noise seed is 32-bit (torch's CPU
            # generator uses the low 32 bits anyway), so fold it rather than refuse every triplet.
            seed=request.seed % SEED_LIMIT,
        )
        return fit_clip(frames, request.source.shape, request.edited_first)


def fit_clip(frames: np.ndarray, shape: tuple[int, ...], first: np.ndarray) -> np.ndarray:
    """A generated (F', h, w, 3) clip brought to the source's (F, H, W, 3), frame 0 = the edited frame.
    Fewer frames than the source is an error (the factory reads 4k+1 clips, which every model grid keeps)."""
    count, height, width = shape[:3]
    if len(frames) < count:
        raise ValueError(f"the propagator made {len(frames)} frames for a {count}-frame source")
    frames = resize_cover_crop(np.ascontiguousarray(frames[:count]), (height, width))
    frames[0] = first
    return frames
