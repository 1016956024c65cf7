"""Editors the benchmark runner can evaluate: anything with `edit(source, instruction, *, seed, sample_id)`.

- `BundleEditor`: a retake edit pipeline (`retake.sample.EditPipeline`) loaded from a bundle directory.
- `FolderEditor`: edits another system already made, one `<id>.mp4` per benchmark sample in a folder.
- `AutoencoderCeiling`: not an editor but the best score any latent editor on a given VAE can reach: each
  sample's ground truth after a VAE round trip (`retake eval ceiling`).

`sample_id` is the benchmark's id of the sample being edited: editors that compute ignore it, editors that
look results up (FolderEditor) need it. `describe()` says what the editor is, for the report. An editor may
also have `check(sample_ids)`, raising before a run starts when it cannot edit some samples (FolderEditor:
videos missing); the runner calls it when present.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retake.errors import RetakeError
from retake.video import Video, read


@runtime_checkable
class Editor(Protocol):
    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        """The edited video of `source` under `instruction`; `seed` makes sampling editors reproducible."""
        ...

    def describe(self) -> dict[str, Any]:
        """What this editor is (type, path, settings), as plain JSON for the report."""
        ...


class MissingEditsError(RetakeError):
    """A folder of edited videos lacks some of the benchmark's ids."""


class FolderEditor:
    """Edits made by another system: `folder/<sample_id>.mp4`, read as they are (any size, any fps)."""

    def __init__(self, folder: str | os.PathLike[str], expected: Sequence[str] | None = None) -> None:
        """expected: sample ids that must all be present; checked now, so a run fails before it starts."""
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"folder of edited videos {self.folder} does not exist")
        if expected is not None:
            self.check(expected)

    def path(self, sample_id: str) -> Path:
        return self.folder / f"{sample_id}.mp4"

    def missing(self, sample_ids: Sequence[str]) -> list[str]:
        return [i for i in sample_ids if not self.path(i).is_file()]

    def check(self, sample_ids: Sequence[str]) -> None:
        """Raise MissingEditsError naming every id without a video (all of them: the user must make them)."""
        missing = self.missing(sample_ids)
        if missing:
            raise MissingEditsError(
                f"{self.folder}: {len(missing)} of {len(sample_ids)} edited videos are missing "
                f"(expected <id>.mp4): {', '.join(missing)}"
            )

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        self.check([sample_id])
        return read(self.path(sample_id))

    def describe(self) -> dict[str, Any]:
        return {"type": "folder", "name": self.folder.name, "path": str(self.folder)}


@dataclass(frozen=True)
class BundleEditConfig:
    """Sampler settings for every edit; None takes the bundle's defaults (`retake_pipeline.json`)."""

    steps: int | None = None
    guidance: float | None = None  # text CFG scale
    video_guidance: float | None = None  # InsViE's video scale (3-way guidance)
    # None: the source's frame count and (H, W), so the edit lines up with the ground truth (the pipeline
    # rounds both down to its grid; the runner resizes a smaller picture back).
    frames: int | None = None
    size: tuple[int, int] | None = None
    device: str = "cpu"
    dtype: str | None = None  # the model's dtype, e.g. "bfloat16" (None: float32)

    def __post_init__(self) -> None:
        if (self.steps is not None and self.steps < 1) or (self.frames is not None and self.frames < 1):
            raise ValueError(f"need steps >= 1 and frames >= 1, got {self.steps} and {self.frames}")


class BundleEditor:
    """A retake edit pipeline: anything with `edit(video, instruction, *, steps, guidance, video_guidance,
    seed, frames, size, progress)` (`retake.sample.EditPipeline`)."""

    def __init__(self, pipeline: Any, config: BundleEditConfig = BundleEditConfig(), name: str = "") -> None:
        self.pipeline = pipeline
        self.config = config
        self.name = name or type(pipeline).__name__
        self.path: Path | None = None

    @classmethod
    def from_pretrained(
        cls, bundle_dir: str | os.PathLike[str], config: BundleEditConfig = BundleEditConfig()
    ) -> BundleEditor:
        """Load the pipeline of a retake bundle directory onto `config.device` in `config.dtype` (fp32)."""
        from retake.sample import EditPipeline  # imports torch and the model: only when a bundle is used

        bundle_dir = Path(bundle_dir)
        if not bundle_dir.is_dir():
            raise FileNotFoundError(f"bundle directory {bundle_dir} does not exist")
        dtype = config.dtype or "float32"
        pipeline = EditPipeline.from_pretrained(bundle_dir, device=config.device, dtype=dtype)
        editor = cls(pipeline, config, name=bundle_dir.name)
        editor.path = bundle_dir
        return editor

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        return self.pipeline.edit(
            source,
            instruction,
            steps=self.config.steps,
            guidance=self.config.guidance,
            video_guidance=self.config.video_guidance,
            seed=seed,
            frames=self.config.frames or source.num_frames,
            size=self.config.size or (source.height, source.width),
            progress=False,
        )

    def describe(self) -> dict[str, Any]:
        """The bundle, the overrides, and the bundle's own sampler defaults (what left-out settings became)."""
        defaults = getattr(self.pipeline, "defaults", None)
        return {
            "type": "bundle",
            "name": self.name,
            "path": None if self.path is None else str(self.path),
            "overrides": {k: v for k, v in asdict(self.config).items() if v is not None},
            "defaults": defaults.to_dict() if hasattr(defaults, "to_dict") else None,
        }


class AutoencoderCeiling:
    """The ground truth of each sample, encoded and decoded by `vae` (a `retake.model.VideoVAE`).

    A latent editor's output is a VAE decoding, so its score cannot exceed what this "editor" scores: even a
    model that generated the exact latents of the ground truth would be judged on this video. Scored next to
    an editor, it separates what the model gets wrong from what the autoencoder loses."""

    def __init__(self, benchmark: Any, vae: Any, name: str = "") -> None:
        self.samples = {s.id: s for s in benchmark.samples}
        self.vae = vae
        self.name = name or "vae-ceiling"
        self.path: Path | None = None

    @classmethod
    def from_pretrained(
        cls, benchmark: Any, vae_dir: str | os.PathLike[str], *, device: str = "cpu"
    ) -> AutoencoderCeiling:
        from retake.model.vae import VideoVAE  # imports torch and diffusers: only when a VAE is used

        vae_dir = Path(vae_dir)
        ceiling = cls(benchmark, VideoVAE.from_pretrained(vae_dir, device=device, tiling=None), vae_dir.name)
        ceiling.path = vae_dir
        return ceiling

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        import torch

        truth = self.samples[sample_id].target()
        with torch.no_grad():
            latents = self.vae.encode(torch.from_numpy(np.ascontiguousarray(truth.frames)))  # posterior mode
            frames = self.vae.decode_to_uint8(latents)[0].cpu().numpy()  # (F, H, W, 3)
        return Video(frames, fps=truth.fps)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "vae-ceiling",
            "name": self.name,
            "path": None if self.path is None else str(self.path),
        }


def open_editor(
    *,
    bundle: str | os.PathLike[str] | None = None,
    videos: str | os.PathLike[str] | None = None,
    expected: Sequence[str] | None = None,
    config: BundleEditConfig = BundleEditConfig(),
) -> BundleEditor | FolderEditor:
    """The editor of exactly one of a retake bundle directory or a folder of edited videos (whose `expected`
    ids are checked now). `config`'s sampler settings are refused with a folder: they cannot reach its edits."""
    if videos is not None and bundle is None:
        given = {
            k: v for k in ("steps", "guidance", "video_guidance") if (v := getattr(config, k)) is not None
        }
        if given:
            raise ValueError(f"sampler settings {given} apply to a bundle, not to a folder of edited videos")
        return FolderEditor(videos, expected)
    if bundle is not None and videos is None:
        return BundleEditor.from_pretrained(bundle, config)
    given = "both" if bundle is not None else "neither"
    raise ValueError(
        f"give exactly one of a bundle (--model) or a folder of edited videos (--videos), got {given}"
    )
