"""What a training run is: typed, frozen configs read from a TOML file (stdlib `tomllib`).

A run is a list of stages (e.g. in-context pretraining on curated unpaired pairs, then SFT on paired edits);
each names its data, steps, batch, optimiser, InsViE tricks, LoRA and where its weights start. Example:

    out = "runs/flatland"            # relative paths are relative to the TOML file
    seed = 0
    [model]
    preset = "flatland-s"            # any TransformerConfig field may follow as an override
    conditioning = "sequence"
    [[stages]]
    name = "pretrain"
    steps = 2000
    batch = 8                        # global batch per optimiser step (all ranks, all accumulation steps)
    data = { cache = "cache/pretrain" }
    optim = { lr = 1e-4, warmup_steps = 100, ema_decay = 0.999 }
    [[stages]]
    name = "sft"
    init = "previous"                # "fresh", "previous", "stage:<name>", "t2v:<dir>" or a model directory
    init_weights = "raw"             # or "ema": an earlier stage's EMA weights
    grow = false                     # true: [model] may be deeper than the init; new blocks start silent
    repatch = false                  # true: [model] may have other patch sizes than the init; resampled
    steps = 500
    batch = 8
    tricks = "insvie"                # or a table of TricksConfig fields, or { preset = "insvie", t_shift = 3.0 }
    data = { path = "data/flatland-pairs", frames = 17, size = [64, 64] }
    # or latent caches: data = { cache = "cache/sft" }, or several as one: { cache = ["cache/a", "cache/b"] }
    # and some edit kinds only: data = { cache = "cache/sft", kinds = ["add", "replace"] }

Any unknown key or ill-typed value raises a ValueError that names it (e.g. `stages[1].optim.lrr`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from retake.checks import check_finite, check_int, check_seed, size_pair
from retake.model.config import TransformerConfig
from retake.model.presets import get_preset

SCHEDULES = ("constant", "cosine", "linear")
DEVICE_NAME = re.compile(r"cpu|auto|cuda(:\d+)?")  # what `distributed.resolve_device` takes
OPTIMIZERS = ("adamw", "muon")
FRAME_WEIGHTINGS = ("uniform", "decay")
DATA_FORMATS = ("auto", "flatland", "curated")
PRECISIONS = ("auto", "fp32", "bf16")
STRATEGIES = ("auto", "none", "ddp", "fsdp")
INIT_WEIGHTS = ("raw", "ema")  # which weights of an earlier stage a stage starts from
# Attention and MLP linears of every block (diffusers' HunyuanVideo names): what LoRA adapts by default.
LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "proj_mlp",
    "single_transformer_blocks.*.proj_out",
)


STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _probability(name: str, value: float) -> None:
    _check(0.0 <= value <= 1.0, f"{name} must be a probability in [0, 1], got {value}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (or Muon + AdamW) with warm-up then a schedule, gradient clipping, accumulation and an optional EMA.

    optimizer "muon": Muon at `muon_lr` on the 2-D weights inside the transformer's blocks, AdamW at `lr` on
    the rest (`retake.train.muon`); not with LoRA or FSDP. On flatland-s it cut the held-out loss after 800
    steps from scratch by ~19% against AdamW alone (docs/training.md).
    """

    lr: float = 1e-4
    optimizer: str = "adamw"
    muon_lr: float = 0.02
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: str = "constant"  # after warm-up: constant, cosine or linear decay to 0 at the stage's end
    grad_clip: float | None = 1.0  # max global gradient norm; None: no clipping
    accumulation: int = 1  # micro-batches per optimiser step
    ema_decay: float | None = None  # None: no EMA

    def __post_init__(self) -> None:
        for name in ("lr", "muon_lr", "eps", "weight_decay"):  # NaN and inf pass `> 0`, then train nothing
            _check(math.isfinite(getattr(self, name)), f"{name} must be finite, got {getattr(self, name)}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(all(0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), got {self.betas}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.eps > 0, f"eps must be > 0, got {self.eps}")
        _check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.muon_lr > 0, f"muon_lr must be > 0, got {self.muon_lr}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}")
        _check(self.accumulation >= 1, f"accumulation must be >= 1, got {self.accumulation}")
        if self.ema_decay is not None:
            _check(0 < self.ema_decay < 1, f"ema_decay must be in (0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class TricksConfig:
    """InsViE's training tricks and the t distribution; each applied per sample with that sample's generator.

    source_noise: add sigma * N(0, I) to the clean source, log sigma ~ N(mean, std). source_dropout: replace
    the source by zeros. text_dropout: the empty prompt's embedding instead of the instruction. identity:
    target = source with the empty prompt ("change nothing"). frame_weighting "decay": earlier frames weigh
    more (see `retake.flow.objective.frame_weights`). t ~ logit-normal(t_mean, t_std), then shifted by t_shift.
    edit_weight: latent positions the edit changes weigh up to 1 + edit_weight in the loss (weight 1 +
    edit_weight * min(|target - source| averaged over channels, 1), unit-scaled latents); an edit often
    touches a small part of the frame, and without it copying the source earns almost all of the loss.
    """

    source_noise: bool = False
    source_noise_mean: float = -3.0
    source_noise_std: float = 0.5
    source_dropout: float = 0.0
    text_dropout: float = 0.0
    identity: float = 0.0
    frame_weighting: str = "uniform"
    frame_weight_power: float = 2.0
    frame_weight_mix: float = 1.0
    t_mean: float = 0.0
    t_std: float = 1.0
    t_shift: float = 1.0
    edit_weight: float = 0.0

    def __post_init__(self) -> None:
        _check(self.edit_weight >= 0, f"edit_weight must be >= 0, got {self.edit_weight}")
        for name in ("source_dropout", "text_dropout", "identity", "frame_weight_mix"):
            _probability(name, getattr(self, name))
        _check(self.source_noise_std >= 0, f"source_noise_std must be >= 0, got {self.source_noise_std}")
        _check(
            self.frame_weighting in FRAME_WEIGHTINGS,
            f"frame_weighting must be one of {FRAME_WEIGHTINGS}, got {self.frame_weighting!r}",
        )
        _check(
            self.t_std > 0 and self.t_shift > 0,
            f"t_std and t_shift must be > 0, got {self.t_std}, {self.t_shift}",
        )


# InsViE-1M's recipe (section 1.2 of the design brief): the `tricks = "insvie"` shorthand.
INSVIE_TRICKS = TricksConfig(
    source_noise=True, source_dropout=0.05, text_dropout=0.1, identity=0.05, frame_weighting="decay"
)
NAMED_TRICKS = {"none": TricksConfig(), "insvie": INSVIE_TRICKS}


@dataclass(frozen=True)
class LoraSettings:
    """LoRA (peft) on the named linears; rank 0 trains every weight instead. Saved weights are merged."""

    rank: int = 0
    alpha: float | None = None  # None: alpha = rank (scale 1)
    dropout: float = 0.0
    targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        _check(self.rank >= 0, f"rank must be >= 0, got {self.rank}")
        _probability("dropout", self.dropout)
        _check(len(self.targets) > 0, "targets must name at least one module")

    @property
    def enabled(self) -> bool:
        return self.rank > 0


@dataclass(frozen=True)
class DataConfig:
    """Where a stage's triplets come from: latent caches (never touch the VAE) or a dataset folder (Flatland
    pairs or a `retake curate` output), decoded to `frames` x `size` and encoded on the fly. Several caches
    train as one dataset (made by the same VAE and text encoder): how new data joins an old cache without
    encoding it again. TOML takes one path or an array of paths."""

    path: Path | None = None
    cache: tuple[Path, ...] = ()
    format: str = "auto"  # auto | flatland | curated
    frames: int = 17  # 4k + 1 for the causal VAE
    size: tuple[int, int] = (64, 64)  # (H, W)
    # Train on these edit kinds only (e.g. ["add", "replace"]); empty: every sample. Needs data that records
    # kinds: Flatland pairs, or a cache of them (retake.train.subset).
    kinds: tuple[str, ...] = ()
    # Draw the samples of these kinds this many times as often (TOML: kind_weights = { add = 3 }); kinds not
    # named weigh 1. Empty: every sample once per epoch. Same data needs as `kinds`.
    kind_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.cache, tuple):  # from Python: one path, or a list of them
            paths = [self.cache] if isinstance(self.cache, str | Path) else self.cache
            object.__setattr__(self, "cache", tuple(Path(p).expanduser() for p in paths))
        _check(self.path is not None or bool(self.cache), "data needs a 'path' or a 'cache'")
        _check(self.path is None or not self.cache, "data takes a 'path' or a 'cache', not both")
        _check(self.format in DATA_FORMATS, f"format must be one of {DATA_FORMATS}, got {self.format!r}")
        if self.path is not None and not isinstance(self.path, Path):  # from Python: a str, maybe with ~
            object.__setattr__(self, "path", Path(self.path).expanduser())
        object.__setattr__(self, "frames", check_int("data frames", self.frames, minimum=1))  # not 17.0
        object.__setattr__(self, "size", size_pair(self.size))  # N or (H, W), as every size argument
        _check(min(self.size) >= 1, f"size must be positive (H, W), got {self.size}")
        if not isinstance(self.kinds, tuple):  # from Python: a list or one kind
            object.__setattr__(
                self, "kinds", (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
            )
        _check(
            all(isinstance(k, str) and k for k in self.kinds) and len(set(self.kinds)) == len(self.kinds),
            f"kinds must be distinct non-empty names, got {list(self.kinds)}",
        )
        self._check_kind_weights()

    def _check_kind_weights(self) -> None:
        weights = self.kind_weights
        if isinstance(weights, dict):  # from Python or TOML: a table of kind -> weight
            weights = tuple(sorted(weights.items()))
        for kind, weight in weights:
            _check(isinstance(kind, str) and bool(kind), f"kind_weights names a kind {kind!r}")
            check_finite(f"kind_weights.{kind}", weight, above=0)  # leave a kind out with `kinds`, not 0
        weights = tuple((kind, float(weight)) for kind, weight in weights)
        object.__setattr__(self, "kind_weights", weights)
        _check(len({k for k, _ in weights}) == len(weights), f"kind_weights names a kind twice: {weights}")
        outside = [k for k, _ in weights if self.kinds and k not in self.kinds]
        _check(not outside, f"kind_weights names kinds {outside} that `kinds` {list(self.kinds)} leaves out")


@dataclass(frozen=True)
class StageConfig:
    """One stage: its data, length, global batch, optimiser, tricks, LoRA and initial weights."""

    name: str
    steps: int
    data: DataConfig
    batch: int = 1  # global samples per optimiser step
    init: str = "previous"  # fresh | previous | stage:<name> | t2v:<dir> | <model dir>
    # Which weights of an earlier stage ("previous", "stage:<name>") to start from: its raw weights or its
    # EMA (that stage needs optim.ema_decay). EMA weights are what a stage is usually evaluated and shipped with.
    init_weights: str = "raw"
    # Start deeper than the init weights: blocks the run's [model] has beyond theirs are appended with zero
    # output gates, so training starts from exactly the init model's function (retake.model.grow).
    grow: bool = False
    # Start with other patch sizes than the init weights: the patch embedding and output layer are resampled to
    # the run's [model] patch (retake.model.patch); every block's weights carry over.
    repatch: bool = False
    guidance: float = 1.0  # embedded guidance fed while training (distilled-guidance models only)
    optim: OptimConfig = OptimConfig()
    tricks: TricksConfig = TricksConfig()
    lora: LoraSettings = LoraSettings()

    def __post_init__(self) -> None:
        _check(
            STAGE_NAME.fullmatch(self.name)
            is not None,  # it names a folder: "..", "." or "a/b" would escape it
            f"name must be a word of letters, digits, '_', '-' or '.' that starts with a letter or digit, "
            f"got {self.name!r}",
        )
        # Python callers may hand over 2.5 or np.int64(8): refused or made plain ints (the run's JSON holds them).
        object.__setattr__(self, "steps", check_int("steps", self.steps, minimum=1))
        object.__setattr__(self, "batch", check_int("batch", self.batch, minimum=1))
        _check(
            self.batch % self.optim.accumulation == 0,
            f"batch {self.batch} must be a multiple of optim.accumulation {self.optim.accumulation}",
        )
        _check(
            not (self.optim.optimizer == "muon" and self.lora.enabled),
            f"stage {self.name!r}: optimizer 'muon' does not train LoRA adapters; use 'adamw' with lora",
        )
        if self.grow:
            self._check_reshapes("grow")
            _check(
                not self.lora.enabled,
                f"stage {self.name!r}: grow with lora would train nothing in the grown blocks (their zero "
                "gates are not LoRA targets); train them fully",
            )
        if self.repatch:
            self._check_reshapes("repatch")
            _check(
                not self.lora.enabled,
                f"stage {self.name!r}: repatch with lora would freeze the resampled patch embedding and output "
                "layer (they are not LoRA targets); train them fully",
            )

    def _check_reshapes(self, option: str) -> None:
        _check(
            self.init != "fresh" and not self.init.startswith("t2v:"),
            f"stage {self.name!r}: {option} needs trained init weights of the same kind, got init {self.init!r}",
        )

    def micro_batch(self, world_size: int) -> int:
        """Samples per rank per micro-batch; ValueError when the global batch does not split evenly."""
        parts = world_size * self.optim.accumulation
        if self.batch % parts:
            raise ValueError(
                f"stage {self.name!r}: batch {self.batch} does not split over {world_size} ranks x "
                f"{self.optim.accumulation} accumulation steps"
            )
        return self.batch // parts


@dataclass(frozen=True)
class ModelConfig:
    """The transformer: a preset plus field overrides, and how to run it."""

    preset: str = "flatland-s"
    overrides: tuple[tuple[str, Any], ...] = ()
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.transformer()  # validates the preset and overrides when the config is read, not at step 0

    def transformer(self) -> TransformerConfig:
        try:
            return get_preset(self.preset, **dict(self.overrides))
        except TypeError as exc:  # dataclasses.replace with a bad value type
            raise ValueError(f"bad override for preset {self.preset!r}: {exc}") from None


@dataclass(frozen=True)
class RunConfig:
    """A whole run: model, stages and the run-wide settings."""

    out: Path
    stages: tuple[StageConfig, ...]
    model: ModelConfig = ModelConfig()
    seed: int = 0
    device: str = "cpu"  # "cuda" (the local rank's GPU under torchrun), "cpu" or "auto"
    precision: str = "auto"  # auto: bf16 autocast on GPUs that support it, fp32 elsewhere
    distributed: str = "auto"  # auto: DDP when torchrun starts several processes; fsdp: shard (GPU runs)
    text_encoder: str = "minilm"  # "minilm" or a directory (see retake.model.text.load_text_encoder)
    vae: Path | None = None  # diffusers VAE directory; not needed with a latent cache
    vae_subfolder: str | None = None
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 1
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        _check(len(self.stages) > 0, "a run needs at least one [[stages]] entry")
        check_seed("seed", self.seed)
        names = [s.name for s in self.stages]
        _check(len(set(names)) == len(names), f"stage names must be unique, got {names}")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        # The name only: a config may be written on a CPU machine for a GPU run (availability: at `train`).
        _check(
            isinstance(self.device, str) and DEVICE_NAME.fullmatch(self.device) is not None,
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}",
        )
        _check(
            self.distributed in STRATEGIES,
            f"distributed must be one of {STRATEGIES}, got {self.distributed!r}",
        )
        _check(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        _check(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        _check(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        self._check_inits(names)

    def _check_inits(self, names: list[str]) -> None:
        for index, stage in enumerate(self.stages):
            if stage.init == "previous":
                _check(
                    index > 0, f"stage {stage.name!r}: init 'previous' needs an earlier stage; use 'fresh'"
                )
            if stage.init.startswith("stage:"):
                ref = stage.init.removeprefix("stage:")
                _check(
                    ref in names[:index], f"stage {stage.name!r}: init {stage.init!r} names no earlier stage"
                )
            self._check_init_weights(index, names)

    def _check_init_weights(self, index: int, names: list[str]) -> None:
        stage = self.stages[index]
        _check(
            stage.init_weights in INIT_WEIGHTS,
            f"stage {stage.name!r}: init_weights must be one of {INIT_WEIGHTS}, got {stage.init_weights!r}",
        )
        if stage.init_weights == "raw":
            return
        _check(
            stage.init == "previous" or stage.init.startswith("stage:"),
            f"stage {stage.name!r}: init_weights 'ema' needs init 'previous' or 'stage:<name>', "
            f"got {stage.init!r}",
        )
        ref = index - 1 if stage.init == "previous" else names.index(stage.init.removeprefix("stage:"))
        _check(
            self.stages[ref].optim.ema_decay is not None,
            f"stage {stage.name!r}: init_weights 'ema' needs an EMA in stage {self.stages[ref].name!r} "
            "(set its optim.ema_decay)",
        )


# ----------------------------------------------------------------------------------------------------------
# TOML -> configs
# ----------------------------------------------------------------------------------------------------------
def load_run_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read a run from TOML; relative paths resolve against the file's folder. `overrides` replace top-level
    keys (e.g. `out=`, `device=`) and are checked as the file's are; a relative path among them is taken from
    the current folder, as a path typed at the command line is."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    return parse_run_config(table, base=path.parent, **overrides)


def parse_run_config(table: dict[str, Any], *, base: Path = Path("."), **overrides: Any) -> RunConfig:
    """A RunConfig from a parsed TOML table (see the module docstring for the layout); `overrides` replace
    top-level keys, as in `load_run_config`."""
    table = dict(table) | {key: _override_value(key, value) for key, value in overrides.items()}
    table.setdefault("out", "runs/retake")
    stages = table.get("stages")
    if stages is not None and not isinstance(stages, list):
        raise ValueError("stages: expected an array of tables ([[stages]])")
    if stages:
        table["stages"] = [_stage_defaults(s, i, base) for i, s in enumerate(stages)]
    return _build(RunConfig, table, "", base)


def _override_value(key: str, value: Any) -> Any:
    """An override as the TOML reader would give it: a path (a path-typed key's text too) as text, made
    absolute from the current folder, not the config file's, which `_build` would join a relative one to."""
    hint = typing.get_type_hints(RunConfig).get(key)
    is_path = hint is Path or Path in typing.get_args(hint)
    if isinstance(value, os.PathLike) or (is_path and isinstance(value, str)):
        return str(Path(value).expanduser().absolute())
    return value


INIT_KEYWORDS = ("fresh", "previous")


def _stage_defaults(table: Any, index: int, base: Path) -> Any:
    """The first stage starts fresh unless told otherwise; init paths are relative to the config file; one
    data cache may be given as a string."""
    if not isinstance(table, dict):
        return table
    table = dict(table)
    data = table.get("data")
    if isinstance(data, dict) and isinstance(data.get("cache"), str):
        data = table["data"] = {**data, "cache": [data["cache"]]}  # one cache is an array of one
    if isinstance(data, dict) and isinstance(data.get("kind_weights"), dict):  # a table: kind -> weight
        table["data"] = {**data, "kind_weights": [[k, v] for k, v in sorted(data["kind_weights"].items())]}
    init = table.setdefault("init", "fresh" if index == 0 else "previous")
    if isinstance(init, str) and init not in INIT_KEYWORDS and not init.startswith("stage:"):
        prefix = "t2v:" if init.startswith("t2v:") else ""
        path = Path(init.removeprefix(prefix)).expanduser()
        table["init"] = prefix + str(path if path.is_absolute() else base / path)
    return table


def _build(cls: type, table: Any, where: str, base: Path) -> Any:
    """Construct dataclass `cls` from a TOML table, naming `where` in every error."""
    if cls is ModelConfig:
        return _build_model(table, where, base)
    if cls is TricksConfig and (isinstance(table, str) or (isinstance(table, dict) and "preset" in table)):
        return _build_tricks(table, where, base)
    if not isinstance(table, dict):
        raise ValueError(f"{where or 'config'}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in table:
        if key not in known:
            raise ValueError(f"{_join(where, key)}: unknown key; known keys: {', '.join(known)}")
    for f in dataclasses.fields(cls):
        if f.name not in table and f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{_join(where, f.name)}: missing required key")
    values = {key: _convert(value, hints[key], _join(where, key), base) for key, value in table.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ValueError(f"{where or 'config'}: {exc}" if where else str(exc)) from None


def _build_tricks(table: str | dict[str, Any], where: str, base: Path) -> TricksConfig:
    """A named tricks preset ("insvie"), or a table {preset = NAME, ...} whose other keys override the preset."""
    table = {"preset": table} if isinstance(table, str) else dict(table)
    name = table.pop("preset")
    if name not in NAMED_TRICKS:
        raise ValueError(f"{where}: unknown tricks preset {name!r}; known: {sorted(NAMED_TRICKS)}")
    if not table:
        return NAMED_TRICKS[name]
    own = _build(TricksConfig, table, where, base)  # checks the override keys and values
    return dataclasses.replace(NAMED_TRICKS[name], **{key: getattr(own, key) for key in table})


def _build_model(table: Any, where: str, base: Path) -> ModelConfig:
    """[model]: its own keys, and any TransformerConfig field as an override of the preset."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table, got {table!r}")
    own = {f.name for f in dataclasses.fields(ModelConfig)} - {"overrides"}
    spec_fields = {f.name for f in dataclasses.fields(TransformerConfig)}
    overrides = {}
    for key, value in table.items():
        if key not in own and key not in spec_fields:
            raise ValueError(
                f"{_join(where, key)}: unknown key; [model] takes {sorted(own)} and TransformerConfig fields"
            )
        if key in spec_fields:
            overrides[key] = tuple(value) if isinstance(value, list) else value
    mine = _build(_ModelOwn, {k: v for k, v in table.items() if k in own}, where, base)
    try:
        return ModelConfig(mine.preset, tuple(sorted(overrides.items())), mine.gradient_checkpointing)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class _ModelOwn:
    preset: str = "flatland-s"
    gradient_checkpointing: bool = False


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(value: Any, hint: Any, where: str, base: Path) -> Any:
    """Check and convert one TOML value to the field type `hint` (named by `where` on error)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _convert(value, options[0], where, base)  # TOML has no null: a present value is the type
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, base)
    if origin is tuple:
        return _convert_tuple(value, args, where, base)
    if hint is Path:
        _expect(isinstance(value, str), value, "a path string", where)
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    if hint is float:
        _expect(isinstance(value, int | float) and not isinstance(value, bool), value, "a number", where)
        return float(value)
    if hint is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), value, "an integer", where)
        return value
    if hint is bool:
        _expect(isinstance(value, bool), value, "true or false", where)
        return value
    if hint is str:
        _expect(isinstance(value, str), value, "a string", where)
        return value
    return value  # Any


def _convert_tuple(value: Any, args: tuple[Any, ...], where: str, base: Path) -> tuple[Any, ...]:
    _expect(isinstance(value, list), value, "an array", where)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], f"{where}[{i}]", base) for i, v in enumerate(value))
    _expect(len(value) == len(args), value, f"an array of {len(args)} values", where)
    return tuple(
        _convert(v, a, f"{where}[{i}]", base) for i, (v, a) in enumerate(zip(value, args, strict=True))
    )


def _expect(ok: bool, value: Any, what: str, where: str) -> None:
    if not ok:
        raise ValueError(f"{where}: expected {what}, got {value!r}")


def stage_index(config: RunConfig, name: str) -> int:
    for index, stage in enumerate(config.stages):
        if stage.name == name:
            return index
    raise ValueError(f"no stage named {name!r}; stages: {[s.name for s in config.stages]}")


def config_to_dict(config: Any) -> Any:
    """A JSON-able view of any config (paths and tuples become strings and lists), for checkpoints and logs."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


__all__ = [
    "INSVIE_TRICKS",
    "LORA_TARGETS",
    "DataConfig",
    "LoraSettings",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "StageConfig",
    "TricksConfig",
    "config_to_dict",
    "load_run_config",
    "parse_run_config",
    "stage_index",
]
