"""The edit pipeline: (source video, instruction) -> edited video, and the bundle it loads from.

Names are loaded lazily so that `retake.sample.config` (sampler defaults) imports without the model stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EditPipeline": "retake.sample.pipeline",
    "edit_file": "retake.sample.pipeline",
    "edit_windows": "retake.sample.windows",
    "EditConfig": "retake.sample.config",
    "SAMPLER_PRESETS": "retake.sample.config",
    "get_defaults": "retake.sample.config",
    "ModelGrid": "retake.sample.grid",
    "parse_size": "retake.sample.grid",
    "BundleError": "retake.sample.bundle",
    "BundleSpec": "retake.sample.bundle",
    "assemble_bundle": "retake.sample.bundle",
    "read_bundle_spec": "retake.sample.bundle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retake.sample' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
