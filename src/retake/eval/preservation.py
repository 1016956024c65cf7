"""Preservation: how untouched the edited video is outside the edit mask, against the source.

PSNR over the pixels outside the mask; SSIM averaged over the windows lying entirely outside it (the mask
dilated by the SSIM window radius, so a window straddling the edit does not count). Both are NaN when
nothing lies outside the mask (a global edit such as a style change has nothing to preserve).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retake.eval._inputs import as_mask, as_video, same_shape
from retake.eval.psnr import MAX_PSNR_DB, psnr
from retake.eval.ssim import ssim


@dataclass(frozen=True)
class Preservation:
    psnr: float  # dB, capped at MAX_PSNR_DB
    ssim: float


def preservation(source: Any, edited: Any, edit_mask: Any, max_db: float = MAX_PSNR_DB) -> Preservation:
    """source, edited: uint8 (F, H, W, 3); edit_mask: (F, H, W) bool, True = edited region."""
    source, edited = as_video(source, "source"), as_video(edited, "edited")
    same_shape(source, edited, ("source", "edited"))
    keep = ~as_mask(edit_mask, source.shape, "edit_mask")
    return Preservation(
        psnr=psnr(source, edited, where=keep, max_db=max_db), ssim=ssim(source, edited, where=keep)
    )
