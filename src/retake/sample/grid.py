"""Fitting an edit request (frames, size) to the sizes the VAE + transformer can represent.

A video of F frames and H x W pixels becomes latents of (F - 1) / t + 1 frames and H / s x W / s pixels (t, s the
VAE's temporal and spatial compression), then tokens of p_t x p x p latent cells. So H and W must be multiples of
s * p and F must be t * k + 1 with k + 1 latent frames a multiple of p_t. Requests are rounded *down* to that
grid: never more frames than the source has, never a size the caller did not ask for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from retake.checks import check_int, size_pair


@dataclass(frozen=True)
class ModelGrid:
    """The pixel/frame granularity of a VAE + transformer pair."""

    spatial: int  # pixels per token side: VAE spatial compression * patch size (16 for HunyuanVideo)
    temporal: int  # frames per latent frame after the first: VAE temporal compression (4)
    latent_frames_multiple: int = 1  # the transformer's temporal patch size

    def __post_init__(self) -> None:
        if min(self.spatial, self.temporal, self.latent_frames_multiple) < 1:
            raise ValueError(f"grid factors must be >= 1, got {self}")

    @property
    def min_frames(self) -> int:
        return self._frames_for(self.latent_frames_multiple)

    def _frames_for(self, latent_frames: int) -> int:
        return (latent_frames - 1) * self.temporal + 1

    def describe_frames(self) -> str:
        """'this model takes 4k + 1 frames', with the latent multiple where there is one: for messages."""
        text = f"this model takes {self.temporal}k + 1 frames"
        if self.latent_frames_multiple > 1:
            text += f" with k + 1 a multiple of {self.latent_frames_multiple}"
        return text

    def round_frames(self, frames: int) -> int:
        """The largest valid frame count <= frames (0 when even the smallest does not fit)."""
        latent = (frames - 1) // self.temporal + 1 if frames >= 1 else 0
        latent -= latent % self.latent_frames_multiple
        return self._frames_for(latent) if latent >= 1 else 0

    def round_frames_up(self, frames: int) -> int:
        """The smallest valid frame count >= frames (>= 1): what a clip is padded to."""
        latent = -(-(max(frames, 1) - 1) // self.temporal) + 1  # ceil((frames - 1) / temporal) + 1
        latent += -latent % self.latent_frames_multiple
        return self._frames_for(latent)

    def fit_frames(self, requested: int | None, default: int, available: int) -> int:
        """Frames to edit. None: `default` capped to the source; an explicit request must fit in the source."""
        if requested is not None:
            check_int("frames", requested, minimum=1)
        if requested is not None and requested > available:
            raise ValueError(f"frames={requested} is more than the source's {available} frames")
        wanted = min(default, available) if requested is None else requested
        frames = self.round_frames(wanted)
        if frames < 1:
            raise ValueError(
                f"the source has {available} frames, fewer than this model's minimum of {self.min_frames} "
                f"(frames are {self.temporal}k + 1)"
                if requested is None
                else f"frames={requested} is below this model's minimum of {self.min_frames}"
            )
        return frames

    def fit_size(self, size: int | tuple[int, int]) -> tuple[int, int]:
        """(H, W) rounded down to multiples of `spatial`; ValueError if either side rounds to nothing. One int
        N is N x N, as `parse_size` reads `--size N`."""
        height, width = size_pair(size)
        if height < 1 or width < 1:
            raise ValueError(f"size must be positive, got {height}x{width}")
        fitted = (height - height % self.spatial, width - width % self.spatial)
        if min(fitted) < self.spatial:
            raise ValueError(
                f"size {height}x{width} is smaller than this model's grid of {self.spatial} pixels per side"
            )
        return fitted

    def fit_shape(self, default: tuple[int, int], source: tuple[int, int]) -> tuple[int, int]:
        """(H, W) on the grid with about the pixels of `default` (the model's usual size) and as near the
        shape of `source` as the grid allows: a portrait clip is edited in portrait instead of being cropped
        to the default's landscape. At most twice the default's pixels: a panorama past that is cropped."""
        area, aspect = default[0] * default[1], source[0] / source[1]
        most = 2 * area
        heights = range(self.spatial, self._floor(most / self.spatial) + 1, self.spatial)
        pairs = [(h, w) for h in heights for w in self._widths(h / aspect, most // h)]

        def cost(pair: tuple[int, int]) -> float:
            height, width = pair  # the shape matters most; then the pixels, which set quality and cost
            return abs(math.log(height / width / aspect)) + 0.25 * abs(math.log(height * width / area))

        return min(pairs, key=cost)

    def _floor(self, pixels: float) -> int:
        return max(self.spatial, int(pixels // self.spatial) * self.spatial)

    def _widths(self, ideal: float, most: int) -> list[int]:
        """The grid widths either side of `ideal`, none past `most` (then the widest that is not)."""
        below = self._floor(ideal)
        return [w for w in (below, below + self.spatial) if w <= most] or [self._floor(most)]


def parse_size(text: str) -> tuple[int, int]:
    """ "480x768" (height x width) -> (480, 768); "64" -> (64, 64), as the flatland commands take it."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+)\s*)?", text)
    if match is None:
        raise ValueError(f"size must look like HEIGHTxWIDTH or N (e.g. 480x768 or 64), got {text!r}")
    return int(match[1]), int(match[2] or match[1])
