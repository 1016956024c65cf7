"""The named vocabulary of Flatland: object colours, background colours, shapes, sizes, patterns and styles.

Object colours are saturated and background colours muted (low chroma), so the oracle judge can separate
objects from any background by colour alone; the object colours are at least ~34 CIELAB units apart and
the background colours at least ~17, far more than blur or H.264 shifts them.
"""

from __future__ import annotations

RGB = tuple[int, int, int]

OBJECT_COLOURS: dict[str, RGB] = {
    "red": (220, 30, 40),
    "orange": (255, 130, 0),
    "yellow": (245, 215, 20),
    "green": (30, 170, 60),
    "cyan": (0, 200, 225),
    "blue": (20, 90, 245),
    "purple": (135, 35, 185),
    "pink": (250, 90, 190),
}

BACKGROUND_COLOURS: dict[str, RGB] = {
    "gray": (128, 128, 128),
    "charcoal": (62, 64, 70),
    "cream": (236, 231, 212),
    "sand": (198, 182, 148),
    "sage": (140, 160, 134),
    "slate": (92, 106, 128),
    "clay": (168, 132, 118),
    "lavender": (182, 170, 200),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

# Object size as a radius in units of min(H, W) at zoom 1; "small" is still ~6.4 px at 64x64, enough for the
# judge to tell a star from a circle after H.264.
SIZES: dict[str, float] = {"small": 0.1, "medium": 0.13, "large": 0.16}

PATTERNS: tuple[str, ...] = ("solid", "gradient", "stripes", "checker", "noise")

STYLES: tuple[str, ...] = ("grayscale", "invert", "outline")


def check_name(value: str, allowed, what: str) -> str:
    """Return `value` if it is one of `allowed`, else raise a ValueError that names it and the choices."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value
