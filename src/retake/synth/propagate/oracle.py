"""The Flatland oracle propagator: re-render the edited scene over the whole clip.

It carries the share of the edit the chosen first frame shows (the oracle editor makes weaker candidates by
blending): the least-squares opacity of the first frame's change against the rendered edit at frame 0.
"""

from __future__ import annotations

import numpy as np

from retake.flatland.edits import Edit
from retake.synth.flatland import apply_residual, edit_change, read_source
from retake.synth.propagate import Request


def shown_opacity(change: np.ndarray, rendered: np.ndarray) -> float:
    """The a in [0, 1] minimising |change - a * rendered|^2 (1 when the rendered edit is empty)."""
    energy = float(np.sum(rendered * rendered))
    if energy == 0:
        return 1.0
    return float(np.clip(np.sum(change * rendered) / energy, 0.0, 1.0))


class FlatlandPropagator:
    name = "flatland"

    def propagate(self, request: Request) -> np.ndarray:
        if request.path is None or request.edit is None or not request.frame_indices:
            raise ValueError(
                "the flatland propagator needs a Flatland source: its file, edit and frame indices"
            )
        scene = read_source(request.path).scene
        residual = edit_change(request.source, scene, Edit.from_json(request.edit), request.frame_indices)
        change = request.edited_first.astype(np.float32) - request.source[0].astype(np.float32)
        video = apply_residual(request.source, residual, shown_opacity(change, residual[0]))
        video[0] = request.edited_first
        return video
