"""ICVE's claim as an experiment: does in-context pretraining on curated unpaired pairs help a small SFT set?

Four arms, one model size, one held-out benchmark (issue 6 section 3):

    A   SFT only                          run "sft_only",     stage "sft"       (S steps)
    B   pretrain, then SFT                run "pretrain_sft", stage "sft"       (P + S steps)
    C   pretrain only                     run "pretrain_sft", stage "pretrain"  (P steps)
    A'  SFT only with B's total steps     run "sft_only",     stage "sft_more"  (S + P steps)

Two training runs give all four arms: C is B's first stage, and A is A''s first stage (A' goes on for P more
steps from A's weights; its optimiser restarts there as B's does between its stages). The runs come from TOML
templates (configs/flatland/*.toml) with the sizes, seed, caches and output folder filled in here.

Everything below is pure: tables in, tables out; benchmarks/icve_flatland.py does the work.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRETRAIN_SFT, SFT_ONLY = "pretrain_sft", "sft_only"
RUNS = (PRETRAIN_SFT, SFT_ONLY)


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    run: str  # which training run holds its weights
    stage: str  # and which stage of it


ARMS: dict[str, Arm] = {
    "A": Arm("A", "SFT only", SFT_ONLY, "sft"),
    "B": Arm("B", "pretrain then SFT", PRETRAIN_SFT, "sft"),
    "C": Arm("C", "pretrain only", PRETRAIN_SFT, "pretrain"),
    "A'": Arm("A'", "SFT only, B's total steps", SFT_ONLY, "sft_more"),
}
STAGE_DATA = {"pretrain": "pretrain", "sft": "sft", "sft_more": "sft"}  # stage -> the cache it reads
# Headline metrics: instruction following (oracle-judge success), quality against the ground truth, and the
# held-out flow loss (latent space, no decoder; lower is better).
METRICS = ("success", "psnr", "ssim", "heldout_loss")


@dataclass(frozen=True)
class Sizes:
    """Training sizes: P pretraining steps, S SFT steps, the global batch of every stage."""

    pretrain_steps: int
    sft_steps: int
    batch: int = 4

    def __post_init__(self) -> None:
        for name in ("pretrain_steps", "sft_steps", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def stage_steps(self) -> dict[str, int]:
        """Steps of every stage of both runs (A' adds P steps to A's S, so it matches B's P + S)."""
        return {"pretrain": self.pretrain_steps, "sft": self.sft_steps, "sft_more": self.pretrain_steps}

    def arm_steps(self) -> dict[str, int]:
        """Total optimiser steps behind each arm's weights."""
        p, s = self.pretrain_steps, self.sft_steps
        return {"A": s, "B": p + s, "C": p, "A'": s + p}


def run_table(
    template: Mapping[str, Any],
    *,
    out: Path,
    seed: int,
    sizes: Sizes,
    caches: Mapping[str, Path],
) -> dict[str, Any]:
    """A training run's table from its TOML template: output folder, seed, and each stage's steps, batch and
    latent cache. `caches` maps the data roles "pretrain" and "sft" to cache folders (stage "pretrain" reads
    the pretraining cache, "sft" and "sft_more" the SFT cache)."""
    table = copy.deepcopy(dict(template))
    table.update(out=str(out), seed=seed)
    steps = sizes.stage_steps()
    for stage in table.get("stages", []):
        name = stage.get("name")
        if name not in steps:
            raise ValueError(f"stage {name!r} of the template is not one of the experiment's {sorted(steps)}")
        role = STAGE_DATA[name]
        if role not in caches:
            raise ValueError(f"stage {name!r} reads cache {role!r}; known caches: {sorted(caches)}")
        stage.update(steps=steps[name], batch=sizes.batch)
        stage["data"] = {**stage["data"], "cache": str(caches[role])}
    return table


def arm_weights(run_dirs: Mapping[str, Path], arm: str, *, ema: bool = False) -> Path:
    """The transformer folder holding an arm's weights, given each run's output folder."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    spec = ARMS[arm]
    return Path(run_dirs[spec.run]) / "stages" / spec.stage / ("transformer-ema" if ema else "transformer")


# ----------------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------------
def headline(summary: Mapping[str, Any] | None, loss: float | None = None) -> dict[str, float | None]:
    """success rate, mean PSNR and mean SSIM of a benchmark run's summary (`retake.eval.runner.aggregate`;
    None when the arm was not run on the benchmark) and the held-out loss (None when not measured)."""
    if summary is None:
        return {"success": None, "psnr": None, "ssim": None, "heldout_loss": loss}
    overall = summary["overall"]
    metrics = overall["metrics"]
    return {
        "success": overall["success"]["rate"],
        "psnr": metrics.get("psnr", {}).get("mean"),
        "ssim": metrics.get("ssim", {}).get("mean"),
        "heldout_loss": loss,
    }


def relative_gain(new: float | None, base: float | None) -> float | None:
    """(new - base) / |base|: +0.1 is 10% better for a higher-is-better metric; None without a base."""
    if new is None or base is None or base == 0 or not (math.isfinite(new) and math.isfinite(base)):
        return None
    return (new - base) / abs(base)


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (0 for one value), min and max over seeds."""

    mean: float | None
    std: float | None
    low: float | None
    high: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "min": self.low, "max": self.high, "n": self.n}


def spread(values: Sequence[float | None]) -> Spread:
    """Spread of the values that exist (None: a metric that did not apply, or a gain without a base)."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return Spread(None, None, None, None, 0)
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    return Spread(statistics.fmean(present), std, min(present), max(present), len(present))


def summarise(per_seed: Mapping[str, Mapping[int, Mapping[str, float | None]]]) -> dict[str, Any]:
    """Per arm and metric the spread over seeds; and B's relative gains over A and A' (computed per seed,
    then spread), plus the success-rate difference in percentage points.

    per_seed: {arm: {seed: headline(...)}}."""
    arms = {
        arm: {m: spread([h[m] for h in seeds.values()]).to_json() for m in METRICS}
        for arm, seeds in per_seed.items()
    }
    gains: dict[str, Any] = {}
    for base in ("A", "A'"):
        if "B" not in per_seed or base not in per_seed:
            continue
        seeds = sorted(set(per_seed["B"]) & set(per_seed[base]))
        b, a = per_seed["B"], per_seed[base]
        table = {m: spread([relative_gain(b[s][m], a[s][m]) for s in seeds]).to_json() for m in METRICS}
        points = [_difference(b[s]["success"], a[s]["success"]) for s in seeds]
        table["success_points"] = spread([None if p is None else 100 * p for p in points]).to_json()
        gains[f"B_vs_{base}"] = table
    return {"arms": arms, "gains": gains}


def _difference(new: float | None, base: float | None) -> float | None:
    return None if new is None or base is None else new - base


def format_table(summary: Mapping[str, Any], sizes: Sizes) -> list[list[str]]:
    """Rows (header first) of the per-arm table: steps, success %, PSNR, SSIM as mean ± std over seeds."""
    rows = [["arm", "what", "steps", "seeds", "success %", "PSNR dB", "SSIM", "held-out loss"]]
    steps = sizes.arm_steps()
    for name, metrics in summary["arms"].items():
        rows.append(
            [
                name,
                ARMS[name].label,
                str(steps[name]),
                str(max(m["n"] for m in metrics.values())),
                _pm(metrics["success"], 100, 1),
                _pm(metrics["psnr"], 1, 2),
                _pm(metrics["ssim"], 1, 3),
                _pm(metrics["heldout_loss"], 1, 4),
            ]
        )
    return rows


def format_gains(summary: Mapping[str, Any]) -> list[list[str]]:
    """Rows (header first) of B's gains: relative % per metric and the success difference in points."""
    header = ["comparison", "success (points)", "success (rel. %)", "PSNR (rel. %)", "SSIM (rel. %)"]
    rows = [[*header, "held-out loss (rel. %, lower is better)"]]
    for name, table in summary["gains"].items():
        rows.append(
            [
                name.replace("_vs_", " vs "),
                _pm(table["success_points"], 1, 1, signed=True),
                _pm(table["success"], 100, 1, signed=True),
                _pm(table["psnr"], 100, 1, signed=True),
                _pm(table["ssim"], 100, 1, signed=True),
                _pm(table["heldout_loss"], 100, 1, signed=True),
            ]
        )
    return rows


def _pm(stats: Mapping[str, Any], scale: float, digits: int, *, signed: bool = False) -> str:
    if stats["mean"] is None:
        return "n/a"
    sign = "+" if signed else ""
    text = f"{stats['mean'] * scale:{sign}.{digits}f}"
    if stats["n"] > 1:
        text += f" ± {stats['std'] * scale:.{digits}f}"
    return text


def markdown(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (for the README) of rows whose first row is the header."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# held-out flow loss: a decoder-free measure of how well an arm models held-out edits
# ----------------------------------------------------------------------------------------------------------
HELDOUT_T = (0.1, 0.3, 0.5, 0.7, 0.9)
# Noise levels of the denoising curve. It starts at pure noise: an editor sampled from noise must there predict
# its target from the source and the text alone, and the held-out loss (HELDOUT_T) never looks at t > 0.9.
DENOISING_T = (1.0, 0.97, 0.9, 0.7, 0.5, 0.3, 0.1)


@dataclass(frozen=True)
class _Prediction:
    """One held-out forward pass: latents (1, C, F, H, W) and the model's velocity for them."""

    index: int  # the sample's position in the cache
    t: float
    target: Any
    source: Any
    start: Any  # x1: the noise, or source + noise for a source-prior model
    noisy: Any
    velocity: Any


def _heldout_predictions(model: Any, cache: Any, t_values: Sequence[float], seed: int) -> Any:
    """Yield a `_Prediction` per (sample, t) of a latent cache, with noise seeded by (seed, sample, k)."""
    import torch

    model.eval()
    with torch.no_grad():
        for index in range(len(cache)):
            sample = cache.get(index)
            target, source = sample.target[None], sample.source[None]  # (1, C, F, H, W)
            for k, t in enumerate(t_values):
                start, noisy = _noisy_target(model, target, source, float(t), (seed, index, k))
                velocity = _velocity(model, noisy, float(t), sample.text, source)
                yield _Prediction(index, float(t), target, source, start, noisy, velocity)


def _noisy_target(model: Any, target: Any, source: Any, t: float, key: tuple[int, ...]) -> tuple[Any, Any]:
    """(start, x_t) for latents (1, C, F, H, W) at noise level t, the noise seeded by `key`; the start is
    the noise, or source + noise for a source-prior model."""
    import numpy as np
    import torch

    from retake.flow.objective import flow_start, interpolate
    from retake.model.config import Prior

    mixed = np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> 1
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(int(mixed)))
    start = flow_start(noise, source if model.spec.prior is Prior.SOURCE else None)
    return start, interpolate(target, start, torch.tensor([t]))


def _velocity(model: Any, noisy: Any, t: float, text: Any, source: Any) -> Any:
    """The model's velocity (float32) for x_t at noise level t under prompt embedding `text`."""
    import torch

    from retake.flow.schedule import to_timestep

    velocity = model(
        hidden_states=noisy,
        timestep=to_timestep(torch.tensor([t])),
        encoder_hidden_states=text.tokens,
        encoder_attention_mask=text.mask,
        pooled_projections=text.pooled,
        source=source,
    )
    return velocity.float()


def heldout_loss(model: Any, cache: Any, *, t_values: Sequence[float] = HELDOUT_T, seed: int = 0) -> float:
    """Mean velocity MSE of `model` (an InContextTransformer) on every sample of a latent cache, at fixed
    noise levels with seeded noise, so every arm is scored on exactly the same noisy inputs.

    It needs no decoder: it compares arms in the latent space they were trained in (lower is better)."""
    from retake.flow.objective import flow_loss, velocity_target

    losses = [
        float(flow_loss(p.velocity, velocity_target(p.target, p.start)))
        for p in _heldout_predictions(model, cache, t_values, seed)
    ]
    return statistics.fmean(losses)


@dataclass(frozen=True)
class DenoisingCurve:
    """How far the model's one-step estimate of the clean target, x0 = x_t - t * v, lies from the target
    (latent MSE) at each noise level t, and the same distance for the source itself ("copy the source").

    An editor sampled from noise relies on t near 1, where x_t holds nothing of the target: an error there
    above `copy_source` means the model does not even reproduce its source from the condition, and sampling
    drifts away from it however low the loss at mid t is."""

    x0_error: dict[float, float]
    copy_source: float

    def row(self) -> dict[str, float]:
        return {
            **{f"t={t:g}": round(e, 4) for t, e in self.x0_error.items()},
            "copy": round(self.copy_source, 4),
        }


def denoising_curve(
    model: Any, cache: Any, *, t_values: Sequence[float] = DENOISING_T, seed: int = 0
) -> DenoisingCurve:
    """The `DenoisingCurve` of `model` over every sample of a latent cache (seeded noise, as heldout_loss)."""
    errors: dict[float, list[float]] = {float(t): [] for t in t_values}
    copies: dict[int, float] = {}
    for p in _heldout_predictions(model, cache, t_values, seed):
        x0 = p.noisy - p.t * p.velocity
        errors[p.t].append(float(((x0 - p.target) ** 2).mean()))
        copies[p.index] = float(((p.source - p.target) ** 2).mean())
    return DenoisingCurve(
        {t: statistics.fmean(e) for t, e in errors.items()}, statistics.fmean(copies.values())
    )


@dataclass(frozen=True)
class InstructionReliance:
    """Does the model read the instruction? The latent MSE of its one-step clean estimate x0 = x_t - t * v at
    noise level t, only on the positions the edit changes (|target - source| averaged over channels above a
    threshold), with each sample's own prompt, another sample's prompt and the empty prompt, next to copying
    the source there. A model that reads its instruction has `own` well below `other` and `empty`; one whose
    three errors agree edits the same whatever it is told."""

    t: float
    own: float
    other: float
    empty: float
    copy_source: float
    samples: int  # samples with at least one changed position (the others are left out)

    def row(self) -> dict[str, float]:
        numbers = {"own": self.own, "other": self.other, "empty": self.empty, "copy": self.copy_source}
        return {"t": self.t, **{k: round(v, 4) for k, v in numbers.items()}, "samples": self.samples}


def instruction_reliance(
    model: Any,
    cache: Any,
    *,
    t: float = 1.0,
    changed: float = 0.25,
    max_share: float = 1.0,
    seed: int = 0,
) -> InstructionReliance:
    """The `InstructionReliance` of `model` over a latent cache of at least two samples; "another prompt" is
    the next sample's (cyclically). `changed`: the threshold on unit-scaled latents that marks a position as
    edited. `max_share` < 1 keeps only local edits: samples whose edited positions are at most that share of
    the latent (whole-frame edits such as a style or a background are easy to read from the pooled prompt
    alone and can hide that object edits ignore it). The noise is seeded per sample, so arms are scored on
    the same inputs."""
    import torch

    if len(cache) < 2:
        raise ValueError(f"instruction_reliance needs a cache of at least 2 samples, got {len(cache)}")
    if not 0 < t <= 1:
        raise ValueError(f"t must be in (0, 1], got {t}")
    if not 0 < max_share <= 1:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    model.eval()
    errors: dict[str, list[float]] = {"own": [], "other": [], "empty": [], "copy": []}
    empty = cache.empty_text()
    with torch.no_grad():
        for index in range(len(cache)):
            sample = cache.get(index)
            target, source = sample.target[None], sample.source[None]  # (1, C, F, H, W)
            edited = ((target - source).abs().mean(1, keepdim=True) > changed).expand_as(target)
            if not edited.any() or edited.float().mean() > max_share:
                continue
            _, noisy = _noisy_target(model, target, source, t, (seed, index))
            prompts = {"own": sample.text, "other": cache.get((index + 1) % len(cache)).text, "empty": empty}
            for name, text in prompts.items():
                x0 = noisy - t * _velocity(model, noisy, t, text, source)
                errors[name].append(float(((x0 - target)[edited] ** 2).mean()))
            errors["copy"].append(float(((source - target)[edited] ** 2).mean()))
    if not errors["own"]:
        raise ValueError(
            f"no sample of the cache changes latent positions by more than {changed} on at most "
            f"{max_share:.0%} of them"
        )
    means = {name: statistics.fmean(values) for name, values in errors.items()}
    return InstructionReliance(
        t, means["own"], means["other"], means["empty"], means["copy"], len(errors["own"])
    )
