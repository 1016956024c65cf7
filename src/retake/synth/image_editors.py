"""Image editors of the first frame: each turns (picture, instruction) into K candidate edits.

- `precomputed`: edited first frames from a folder laid out `<root>/<input stem>/<instruction>.png`, the
  instruction written with underscores for spaces (../shared/data/edited_first_frames); one candidate each;
- `diffusers`: any instruction-editing diffusers pipeline (StableDiffusionInstructPix2PixPipeline and kin) from
  a local directory, one candidate per guidance strength;
- `flatland`: the oracle for Flatland sources: the structured edit rendered into frame 0, blended at
  strength / max(strengths) (so only the strongest candidate is the full edit).

An editor may bring the instructions for an input itself (`edits`): the precomputed folder names them, the
Flatland sidecar holds them. Other editors get them from the input's sidecar text or the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retake.flatland.edits import Edit
from retake.synth.flatland import apply_residual, edit_change, read_source
from retake.synth.loading import cpu_generator, diffusers_pipeline, to_pil, to_uint8
from retake.synth.recipes import EditorConfig
from retake.synth.records import Candidate
from retake.video import resize_cover_crop


@dataclass(frozen=True)
class EditSpec:
    """One edit to make of an input: the instruction, and what the editor needs to redo it (a file name, a
    structured edit ...), stored with the triplet."""

    instruction: str
    edit: dict[str, Any] | None = None
    edit_type: str = ""


class ImageEditor(Protocol):
    name: str

    def edits(self, path: Path, source: str) -> list[EditSpec] | None:
        """The edits this editor knows for an input, or None when it takes instructions from elsewhere."""
        ...

    def candidates(self, picture: np.ndarray, spec: EditSpec, *, path: Path, seed: int) -> list[Candidate]:
        """Candidate edits of `picture` (H, W, 3) uint8, each the same shape."""
        ...


def instruction_from_name(stem: str) -> str:
    """'add_a_cowboy_hat' -> 'Add a cowboy hat.'"""
    text = " ".join(stem.replace("_", " ").split())
    if not text:
        raise ValueError(f"an edited-frame file name must hold the instruction, got {stem!r}")
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def fit_picture(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An editor's output brought to the edited picture's (H, W) (cover and centre-crop)."""
    return resize_cover_crop(np.ascontiguousarray(image)[None], tuple(shape[:2]))[0]


class PrecomputedEditor:
    name = "precomputed"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"precomputed edits folder not found: {self.root}")

    def folder(self, source: str) -> Path:
        """The folder of an input's edited frames: named after the input file without its extension."""
        return self.root / Path(source).stem

    def edits(self, path: Path, source: str) -> list[EditSpec]:
        files = sorted(self.folder(source).glob("*.png"))
        return [EditSpec(instruction_from_name(f.stem), {"file": f.name}) for f in files]

    def candidates(self, picture: np.ndarray, spec: EditSpec, *, path: Path, seed: int) -> list[Candidate]:
        from retake.synth.sources import read_still

        file = self.folder(path.name) / str((spec.edit or {}).get("file", ""))
        return [Candidate(fit_picture(read_still(file), picture.shape))]


class DiffusersImageEditor:
    """An InstructPix2Pix-style pipeline: called with prompt, image, guidance_scale, image_guidance_scale."""

    name = "diffusers"

    def __init__(self, config: EditorConfig) -> None:
        self.config = config

    def edits(self, path: Path, source: str) -> None:
        return None

    def candidates(self, picture: np.ndarray, spec: EditSpec, *, path: Path, seed: int) -> list[Candidate]:
        pipeline = diffusers_pipeline(str(self.config.path), self.config.device, self.config.dtype)
        out = []
        for strength in self.config.strengths:
            result = pipeline(
                prompt=spec.instruction,
                image=to_pil(picture),
                num_inference_steps=self.config.steps,
                guidance_scale=strength,
                image_guidance_scale=self.config.image_guidance,
                generator=cpu_generator(seed),  # the same noise at every strength: only guidance differs
                output_type="np",
            )
            out.append(Candidate(fit_picture(to_uint8(result.images[0]), picture.shape), float(strength)))
        return out


class FlatlandEditor:
    """The oracle: the sidecar's structured edit, rendered into frame 0 (see the module docstring)."""

    name = "flatland"

    def __init__(self, config: EditorConfig) -> None:
        self.strengths = config.strengths

    def edits(self, path: Path, source: str) -> list[EditSpec]:
        sidecar = read_source(path)
        return [EditSpec(text, edit.to_json(), edit.kind) for edit, text in sidecar.edits]

    def candidates(self, picture: np.ndarray, spec: EditSpec, *, path: Path, seed: int) -> list[Candidate]:
        scene = read_source(path).scene
        residual = edit_change(picture[None], scene, Edit.from_json(spec.edit or {}), (0,))
        top = max(self.strengths)
        return [
            Candidate(apply_residual(picture[None], residual, s / top)[0], float(s)) for s in self.strengths
        ]


def make_image_editor(config: EditorConfig) -> ImageEditor:
    if config.name == "precomputed":
        if config.path is None:  # else Path("None") would be looked for and reported as not found
            raise ValueError("editor 'precomputed' needs editor.path (--edits): it is unset")
        return PrecomputedEditor(config.path)
    if config.name == "diffusers":
        return DiffusersImageEditor(config)
    if config.name == "flatland":
        return FlatlandEditor(config)
    raise ValueError(f"unknown image editor {config.name!r}; known: precomputed, diffusers, flatland")
