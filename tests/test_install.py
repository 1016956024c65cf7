"""The install ends with the headless OpenCV build only, and scene detection still works with it."""

from __future__ import annotations

import importlib.metadata as md
import re

import cv2
import numpy as np
import pytest


def test_opencv_has_no_gui_backend():
    info = cv2.getBuildInformation()
    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    assert gui is not None, "cv2 build information has no GUI line"
    assert gui.group(1) == "NONE", f"cv2 was built with a GUI backend: {gui.group(1)}"


def test_only_the_headless_distribution_is_installed():
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("opencv-python")
    assert md.distribution("opencv-python-headless").version


def test_scenedetect_finds_a_hard_cut_with_headless_opencv():
    from scenedetect import ContentDetector, SceneManager
    from scenedetect.frame_timecode import FrameTimecode

    # 20 dark frames then 20 bright, textured frames: one cut at frame 20.
    rng = np.random.default_rng(0)
    a = np.full((20, 48, 64, 3), 30, np.uint8)
    b = rng.integers(150, 255, size=(20, 48, 64, 3), dtype=np.uint8)
    frames = np.concatenate([a, b])
    detector = ContentDetector(threshold=27.0, min_scene_len=5)
    cuts = []
    for i, frame in enumerate(frames):
        cuts += detector.process_frame(FrameTimecode(i, fps=25.0), frame[..., ::-1].copy())
    assert [int(c.frame_num) if hasattr(c, "frame_num") else int(c) for c in cuts] == [20]
    assert SceneManager  # the manager API the curation stage uses is importable
