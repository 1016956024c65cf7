"""Frame sizes the pipeline works at: the source aspect ratio kept, the short side set, never upscaled."""

from __future__ import annotations


def fit_short_side(height: int, width: int, short_side: int, *, even: bool = False) -> tuple[int, int]:
    """(H, W) with the aspect ratio of (height, width) and min(H, W) == min(short_side, min(height, width)).
    `even` rounds both down to even numbers, as H.264 in yuv420p needs."""
    if height < 1 or width < 1 or short_side < 1:
        raise ValueError(f"sizes must be positive, got {height}x{width} and short side {short_side}")
    scale = min(1.0, short_side / min(height, width))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if even:
        h, w = max(2, h - h % 2), max(2, w - w % 2)
    return h, w
