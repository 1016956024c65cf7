"""Propagation: the edited first frame -> an edited video that moves like the source.

- `flow`: the source's optical flow carries the edit (classical, CPU; propagate.flow);
- `model`: a retake editor bundle anchored on the edited first frame (propagate.model);
- `diffusers`: an image-to-video pipeline started from the edited first frame (propagate.diffusers);
- `flatland`: the oracle, re-rendering the edited Flatland scene (propagate.oracle).

Every propagator returns a clip of the source's shape whose frame 0 is the edited first frame itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retake.synth.recipes import PropagationConfig


@dataclass(frozen=True)
class Request:
    """One propagation: source (F, H, W, 3) uint8, the chosen edited first frame (H, W, 3) uint8, and what
    learnt or oracle propagators need besides."""

    source: np.ndarray
    edited_first: np.ndarray
    instruction: str
    fps: float
    seed: int
    path: Path | None = None  # the input file (the Flatland oracle reads its sidecar)
    edit: dict[str, Any] | None = None  # the structured edit, when known
    frame_indices: tuple[int, ...] = ()  # native frame of each source frame


class Propagator(Protocol):
    name: str

    def propagate(self, request: Request) -> np.ndarray:
        """The edited clip, (F, H, W, 3) uint8 like `request.source`, frame 0 = `request.edited_first`."""
        ...


def make_propagator(config: PropagationConfig) -> Propagator:
    """The propagator `config.name` names (models load lazily, on first use)."""
    if config.name == "flow":
        from retake.synth.propagate.flow import FlowPropagator

        return FlowPropagator(config)
    if config.name == "flatland":
        from retake.synth.propagate.oracle import FlatlandPropagator

        return FlatlandPropagator()
    if config.name == "model":
        from retake.synth.propagate.model import ModelPropagator

        return ModelPropagator(config)
    if config.name == "diffusers":
        from retake.synth.propagate.diffusers import DiffusersPropagator

        return DiffusersPropagator(config)
    raise ValueError(f"unknown propagator {config.name!r}; known: flow, model, diffusers, flatland")
