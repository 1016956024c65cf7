"""Global styles as pixel operators. The renderer applies them to a finished frame, and the judge applies the
same operator to the source's pixels to predict what a styled target must look like."""

from __future__ import annotations

import cv2
import numpy as np

from retake.flatland.palette import STYLES, check_name

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# Gradient (grey levels per pixel) times this gain is how dark an outline is: object edges come out near
# black, the gentle steps of background patterns light grey.
_OUTLINE_GAIN = 5.0
# Gradients below this (grey levels per pixel) draw nothing: compression noise and smooth gradients stay
# white, so the style predicted from a decoded source matches one rendered from a clean one.
_OUTLINE_FLOOR = 9.0


def apply_style(image: np.ndarray, style: str) -> np.ndarray:
    """Styled copy of float RGB image(s) in 0..255, shape (..., H, W, 3) -> same shape, float32."""
    check_name(style, STYLES, "style")
    image = np.asarray(image, np.float32)
    if style == "grayscale":
        return np.repeat((image @ _LUMA)[..., None], 3, axis=-1)
    if style == "invert":
        return 255.0 - image
    if image.ndim == 4:
        return np.stack([_outline(frame) for frame in image])
    return _outline(image)


def _outline(image: np.ndarray) -> np.ndarray:
    """White page with dark lines where any channel has an edge (a pencil-sketch look). (H,W,3) float32."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    magnitude = np.sqrt(gx * gx + gy * gy).max(axis=-1)  # (H, W): the strongest channel edge
    page = 255.0 - np.clip((magnitude - _OUTLINE_FLOOR) * _OUTLINE_GAIN, 0.0, 255.0)
    return np.repeat(page[..., None], 3, axis=-1)
