"""Models: the in-context video transformer, its presets and checkpoint import (text encoders and the VAE live in
their own modules here).

Names are loaded lazily so that importing one submodule (say `retake.model.text`) does not pull in the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "InContextTransformer": "retake.model.transformer",
    "SourceCache": "retake.model.cache",
    "TransformerConfig": "retake.model.config",
    "Conditioning": "retake.model.config",
    "AttentionMode": "retake.model.config",
    "Prior": "retake.model.config",
    "Prediction": "retake.model.config",
    "PRESETS": "retake.model.presets",
    "get_preset": "retake.model.presets",
    "build_transformer": "retake.model.presets",
    "grow_depth": "retake.model.grow",
    "resize_patches": "retake.model.patch",
    "load_t2v_into_channel": "retake.model.checkpoints",
    "convert_icve_checkpoint": "retake.model.convert",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retake.model' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
