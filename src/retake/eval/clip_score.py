"""CLIP similarities of an edited video: text-frame (does it show the instruction?) and frame-frame (is it
consistent over time?), from CLIP weights in a local directory (transformers CLIPModel + CLIPProcessor).

Both are plain cosine similarities of L2-normalised CLIP embeddings, in [-1, 1] (not the x100, clipped-at-0
"CLIPScore" convention):
    text_frame  = mean over frames t of cos(text, frame_t)
    frame_frame = mean over t of cos(frame_t, frame_{t+1})
Frames go through the checkpoint's own image processor (resize, centre crop, normalise); the PIL backend is
used because torchvision, which the default backend needs, does not work with the CPU torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

from retake.eval._inputs import as_video


@dataclass(frozen=True)
class ClipScores:
    text_frame: float | None  # None when no text was given
    frame_frame: float | None  # None for a single frame


def _features(output: Any) -> torch.Tensor:
    # transformers >= 5 returns a model output whose pooler_output holds the projected embedding.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipScorer:
    """Embeds frames and texts with one CLIP model; all embeddings come back L2-normalised on the CPU."""

    def __init__(
        self,
        model: CLIPModel,
        tokenizer: CLIPTokenizer,
        image_processor: CLIPImageProcessorPil,
        device: torch.device | str = "cpu",
        batch_size: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ) -> ClipScorer:
        """Load model, tokenizer and image processor from a local directory (never from the network)."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"CLIP directory not found: {path}")
        try:
            model = CLIPModel.from_pretrained(path, local_files_only=True, dtype=dtype)
            tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
            image_processor = CLIPImageProcessorPil.from_pretrained(path, local_files_only=True)
        except OSError as exc:  # transformers' "no such file" for missing config/weights/tokenizer files
            raise FileNotFoundError(f"incomplete CLIP directory {path}: {exc}") from exc
        return cls(model, tokenizer, image_processor, device, batch_size)

    @torch.no_grad()
    def embed_frames(self, video: Any) -> torch.Tensor:
        """uint8 (F, H, W, 3) -> (F, D) float32 unit vectors."""
        frames = as_video(video, "video")
        chunks = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            pixels = self.image_processor(
                images=batch, return_tensors="pt", input_data_format="channels_last"
            )["pixel_values"]  # (B, 3, S, S); the layout stated, not guessed (a 3-px picture is ambiguous)
            pixels = pixels.to(self.device, self.model.dtype)
            chunks.append(_features(self.model.get_image_features(pixel_values=pixels)).float().cpu())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N strings -> (N, D) float32 unit vectors (truncated to the model's context length)."""
        if isinstance(texts, str) or not texts or not all(isinstance(text, str) for text in texts):
            raise ValueError(f"texts must be a non-empty sequence of strings, got {texts!r}")
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.model.config.text_config.max_position_embeddings,
            return_tensors="pt",
        ).to(self.device)
        features = self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        return torch.nn.functional.normalize(_features(features).float().cpu(), dim=-1)

    def scores(self, video: Any, text: str | None = None) -> ClipScores:
        """Both similarities from one pass over the frames (see the module docstring)."""
        if text is not None and not isinstance(text, str):
            raise ValueError(f"text must be one string (score each prompt on its own), got {text!r}")
        frames = self.embed_frames(video)  # (F, D)
        text_frame = None
        if text is not None:
            text_frame = float((frames @ self.embed_texts([text])[0]).mean())
        frame_frame = float((frames[:-1] * frames[1:]).sum(-1).mean()) if len(frames) > 1 else None
        return ClipScores(text_frame=text_frame, frame_frame=frame_frame)

    def text_frame_similarity(self, video: Any, text: str) -> float:
        """Mean cosine between the text and each frame."""
        return float(self.scores(video, text).text_frame)

    def frame_similarity(self, video: Any) -> float:
        """Mean cosine between consecutive frames (F >= 2)."""
        frames = as_video(video, "video", min_frames=2)
        return float(self.scores(frames).frame_frame)
