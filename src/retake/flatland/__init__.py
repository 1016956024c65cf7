"""Flatland: a procedural 2D world in which every part of retake runs end to end on CPU and is measured exactly.

- scenes (scene.py) move (motion.py) and render at any size (render.py) with global styles (style.py);
- raw footage with hard cuts and a ground-truth sidecar (footage.py, truth.py);
- paired edits with masks (edits.py, pairs.py);
- the oracle describer (describe.py) and the oracle judge (judge.py, vision.py).
"""

from retake.flatland.describe import describe_clips, describe_edit
from retake.flatland.edits import EDIT_KINDS, Edit, apply_edit, sample_edit
from retake.flatland.footage import FootageConfig, footage_video, make_footage
from retake.flatland.judge import JudgeConfig, Verdict, judge
from retake.flatland.pairs import PairSample, load_pair, make_pair, make_pairs
from retake.flatland.render import Rendering, render
from retake.flatland.scene import Background, Camera, Event, Scene, SceneObject
from retake.flatland.truth import FootageTruth

__all__ = [
    "EDIT_KINDS",
    "Background",
    "Camera",
    "Edit",
    "Event",
    "FootageConfig",
    "FootageTruth",
    "JudgeConfig",
    "PairSample",
    "Rendering",
    "Scene",
    "SceneObject",
    "Verdict",
    "apply_edit",
    "describe_clips",
    "describe_edit",
    "footage_video",
    "judge",
    "load_pair",
    "make_footage",
    "make_pair",
    "make_pairs",
    "render",
    "sample_edit",
]
