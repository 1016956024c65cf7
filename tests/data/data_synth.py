"""Synthetic test footage: textured shots that move at a known speed, joined by hard cuts or fades."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from retake import video

TINTS = np.array([[1.0, 0.25, 0.2], [0.2, 0.9, 0.3], [0.25, 0.35, 1.0], [0.95, 0.85, 0.2]])


def shot(
    rng: np.random.Generator, frames: int, size: tuple[int, int], speed: int, tint: int = 0
) -> np.ndarray:
    """(frames, H, W, 3) uint8: a blurred random texture in one of four strong tints (consecutive shots in
    different tints make plain cuts), sliding `speed` px per frame."""
    h, w = size
    texture = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-6)
    low, span = (40, 200) if tint % 2 == 0 else (15, 110)  # bright and dark shots alternate
    base = (low + span * texture[..., None] * TINTS[tint % len(TINTS)]).astype(np.uint8)  # (H, W, 3)
    return np.stack([np.roll(base, i * speed, axis=1) for i in range(frames)])


def fade_through_black(a: np.ndarray, b: np.ndarray, length: int) -> np.ndarray:
    """a, fading out over `length` frames, `length` black-ish frames, then b fading in over `length` frames."""
    ramp = np.linspace(1, 0, length)[:, None, None, None]
    out = (a[-length:] * ramp).astype(np.uint8)
    black = np.zeros((length, *a.shape[1:]), np.uint8)
    into = (b[:length] * ramp[::-1]).astype(np.uint8)
    return np.concatenate([a[:-length], out, black, into, b[length:]])


def write_video(
    path: Path,
    shots: list[tuple[int, int]],
    *,
    fps: float = 24,
    size: tuple[int, int] = (64, 96),
    seed: int = 0,
) -> list[int]:
    """Write shots [(frames, speed px/frame), ...] joined by hard cuts; returns the cut frames (0 excluded)."""
    rng = np.random.default_rng(seed)
    parts = [shot(rng, n, size, speed, seed + i) for i, (n, speed) in enumerate(shots)]
    video.write(video.Video(np.concatenate(parts), fps=fps), path)
    return list(np.cumsum([n for n, _ in shots])[:-1])


def write_audio_only(path: Path, seconds: float = 1.0) -> None:
    """An mp4 holding one AAC audio stream and no video."""
    rate = 16000
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        tone = (0.2 * np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_inputs(folder: Path, good: int = 4) -> dict[str, list[int]]:
    """A folder of small test inputs: `good` moving videos with hard cuts, plus one of each kind of bad
    input (zero bytes, text named .mp4, truncated, audio only) and two the basic filter or motion drop.
    Returns the ground-truth cuts of the good ones by name."""
    folder.mkdir(parents=True, exist_ok=True)
    cuts = {}
    for i in range(good):
        cuts[f"good_{i}.mp4"] = write_video(folder / f"good_{i}.mp4", [(40, 2), (36 + 4 * i, 3)], seed=i)
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video")
    write_video(folder / "whole.mp4", [(48, 2)], seed=50)
    data = (folder / "whole.mp4").read_bytes()
    (folder / "whole.mp4").unlink()
    # Cut inside the first keyframe: the index survives, no frame decodes. A later cut leaves a video that is
    # either too short for the basic filter or decodes a number of frames that depends on the decoder's
    # threads, so the executors would disagree on the error's detail.
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 5])
    write_audio_only(folder / "audio.mp4")
    write_video(folder / "still.mp4", [(48, 0)], seed=51)
    write_video(folder / "short.mp4", [(12, 2)], seed=52)
    return cuts
