"""Editing more frames than the model takes at once: overlapping passes, each pinned to the end of the last.

A model edits a fixed number of frames at a time (the bundle's `frames`: 17 for Flatland, 61 for ICVE). A
longer stretch is edited in passes of that many frames. Each pass after the first starts `overlap` frames
before the previous one ended, and those frames, edited already, are pinned as its prefix
(`EditPipeline.edit(prefix=...)`): the pass continues the edit it is shown instead of inventing its own
version of it (another red car, a hat in another place). The overlap is 4m + 1 frames, which the causal VAE
encodes into (nearly exactly: see `EditPipeline.encode_prefix`) the first m + 1 latent frames of the pass;
0 makes independent passes. The last pass takes what is left, and where that is off the model's 4k + 1 grid,
the last source frame is repeated up to the grid and the repeats are dropped again, so every frame is edited.

What pinning cannot give: the model still predicts the pinned frames' velocity and only the sampler holds
them to their path, so a pass follows them only as far as the model's own prediction agrees (the
"replacement" method of Ho et al. 2022, which they found can drift; a model trained to continue given frames,
as video continuation models are, would do better). `benchmarks/long_edits.py` measures the seams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from retake.checks import check_int, derive_seed
from retake.flow import Step
from retake.sample.grid import ModelGrid
from retake.sample.pass_store import PassStore
from retake.video import Video, check_video_object

if TYPE_CHECKING:  # the pipeline's edit_file uses this module
    from retake.sample.pipeline import EditPipeline


@dataclass(frozen=True)
class Window:
    """One pass over frames [start, end) of the source."""

    start: int  # first source frame
    frames: int  # frames the model takes, on its grid, `pad` included
    pad: int  # copies of the last source frame appended to reach the grid (the last pass only)
    prefix: int  # leading frames the previous pass edited already: pinned here, not kept from here

    @property
    def end(self) -> int:
        """One past the last source frame of the pass."""
        return self.start + self.frames - self.pad


def fit_window(frames: int | None, default: int, grid: ModelGrid) -> int:
    """Frames per pass: `default` (the bundle's), or `frames` rounded down to the model's grid."""
    if frames is None:
        return default
    window = grid.round_frames(check_int("frames", frames, minimum=1))
    if window < 1:
        raise ValueError(f"frames={frames} is below this model's minimum of {grid.min_frames}")
    return window


def fit_passes(grid: ModelGrid, default: int, frames: int | None, overlap: int | None) -> tuple[int, int]:
    """(frames per pass, overlap): `fit_window`'s pass length and the overlap given (checked) or its
    default. What a command checks on a bundle's configs before loading it, and `edit_file` uses."""
    window = fit_window(frames, default, grid)
    return window, default_overlap(window, grid) if overlap is None else check_overlap(overlap, window, grid)


def default_overlap(window: int, grid: ModelGrid) -> int:
    """About a quarter of the window's latent frames and at least two (the pinned frames then carry motion,
    not only a picture), leaving at least one new latent frame per pass; a one-latent-frame window gets 0
    (independent passes). 17 frames share 5, 61 share 13."""
    latent = (check_int("window", window, minimum=1) - 1) // grid.temporal + 1
    pinned = min(max(2, round(latent / 4)), latent - 1)  # latent frames shared by neighbouring passes
    return 0 if pinned < 1 else (pinned - 1) * grid.temporal + 1


def check_overlap(overlap: int, window: int, grid: ModelGrid) -> int:
    """`overlap` if it is 0 or temporal * m + 1 frames (what the causal VAE encodes on its own) and smaller
    than the window; ValueError naming it otherwise."""
    check_int("overlap", overlap, minimum=0)
    if overlap >= window or (overlap and overlap % grid.temporal != 1 % grid.temporal):
        raise ValueError(
            f"overlap must be 0 or {grid.temporal}m + 1 frames, fewer than the {window} of a pass; got {overlap}"
        )
    return overlap


def plan_windows(total: int, window: int, overlap: int, grid: ModelGrid) -> list[Window]:
    """The passes that edit `total` frames with `window` frames per pass, neighbours sharing `overlap`.

    window must be on the model's grid (`grid.round_frames(window) == window`); overlap must be 0 or
    temporal * m + 1, and smaller than the window. The last pass is the shortest grid clip that holds what is
    left (padded), so a stretch of at most `window` frames is one pass.
    """
    check_int("total", total, minimum=1)
    if grid.round_frames(check_int("window", window, minimum=1)) != window:
        raise ValueError(
            f"window must be a frame count this model takes ({grid.temporal}k + 1 with k + 1 a multiple of "
            f"{grid.latent_frames_multiple}), got {window}"
        )
    check_overlap(overlap, window, grid)
    windows, start = [], 0
    while total - start > window:
        windows.append(Window(start, window, pad=0, prefix=overlap if windows else 0))
        start += window - overlap
    frames = grid.round_frames_up(total - start)
    windows.append(Window(start, frames, pad=frames - (total - start), prefix=overlap if windows else 0))
    return windows


def edit_windows(
    pipeline: EditPipeline,
    video: Video,
    instruction: str,
    *,
    window: int | None = None,
    overlap: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    callback: Callable[[Step], None] | None = None,
    store: PassStore | None = None,
    **options: Any,
) -> Video:
    """Edit every frame of `video` in passes of `window` frames (default: the bundle's) sharing `overlap`
    (default: `default_overlap`); returns as many frames as `video` has, at its fps.

    The first pass uses `seed`, so a video no longer than the window is edited exactly as `pipeline.edit`
    edits it (padding aside); pass i > 0 uses `derive_seed(seed, i)`. options: the other `pipeline.edit`
    settings (guidance, video_guidance, size). callback: called after every denoising step of every pass.
    store: a `PassStore` of this request (opened here): the passes it holds are loaded instead of edited,
    and each pass edited is saved to it.
    video: a `Video` (uint8 (F, H, W, 3)); returns a `Video` of uint8 (F, H', W', 3), H' x W' the fitted size.
    """
    check_video_object(video)  # the plan reads video.num_frames, whose AttributeError would name nothing
    if window is not None:  # fit_passes names it frames, as edit_file and the command line call it
        check_int("window", window, minimum=1)
    if video.num_frames == 0:
        raise ValueError("video has no frames to edit")
    # Each pass sets its own frame count and prefix; passed on as well they would clash in `pipeline.edit`.
    if "frames" in options:
        raise ValueError(
            f"edit_windows edits every frame of the video and takes the frames per pass as window=, "
            f"not frames={options['frames']!r}"
        )
    if "prefix" in options:
        raise ValueError("edit_windows takes no prefix: it pins each pass after the first to the one before")
    window, overlap = fit_passes(pipeline.grid, pipeline.defaults.frames, window, overlap)
    plan = plan_windows(video.num_frames, window, overlap, pipeline.grid)
    num_steps = pipeline.defaults.with_overrides(steps=steps).steps
    out: np.ndarray | None = None  # (F, H, W, 3) once the first pass gives the edit's size
    saved = 0 if store is None else store.open()
    with _windows_bar(progress) as bar:
        task = bar.add_task("", total=len(plan) * num_steps)
        for index, pass_ in enumerate(plan):
            bar.update(task, description=_describe(index, plan))
            if index < saved:
                frames = store.load(index, pass_.end - pass_.start - pass_.prefix)
                bar.advance(task, num_steps)
            else:
                done = pass_.prefix and out is not None  # the frames this pass continues, edited already
                edited = pipeline.edit(
                    _segment(video, pass_),
                    instruction,
                    frames=pass_.frames,
                    seed=seed if index == 0 else derive_seed(seed, index),
                    steps=steps,
                    prefix=out[pass_.start : pass_.start + pass_.prefix] if done else None,
                    progress=False,
                    callback=_advancing(bar, task, callback),
                    **options,
                )
                frames = edited.frames[pass_.prefix : pass_.frames - pass_.pad]  # (new, H, W, 3)
                if store is not None:
                    store.save(index, frames)
            if out is None:  # one array for the result, not a list of passes joined at the end
                out = np.empty((video.num_frames, *frames.shape[1:]), np.uint8)
            out[pass_.start + pass_.prefix : pass_.end] = frames
    return Video(out, fps=video.fps)


def _advancing(
    bar: Progress, task: TaskID, callback: Callable[[Step], None] | None
) -> Callable[[Step], None]:
    """A step callback that moves the bar, then calls the caller's."""

    def on_step(step: Step) -> None:
        bar.advance(task)
        if callback is not None:
            callback(step)

    return on_step


def _segment(video: Video, pass_: Window) -> Video:
    """The source frames of one pass, the last repeated `pad` times: (frames, H, W, 3)."""
    frames = video.frames[pass_.start : pass_.end]
    if pass_.pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pass_.pad, axis=0)])
    return Video(frames, fps=video.fps)


def _describe(index: int, plan: list[Window]) -> str:
    pass_ = plan[index]
    return f"editing frames {pass_.start}-{pass_.end - 1} (pass {index + 1} of {len(plan)})"


def _windows_bar(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )
