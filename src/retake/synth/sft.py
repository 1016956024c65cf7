"""ICVE's SFT pairs from inpainting: remove, add (a remove pair reversed) and replace, their instruction and
quality filters, and the re-balancing of edit types over the whole dataset.

Instructions start from one template per type and have their verb drawn from the curation pipeline's verb
groups (retake.data.verbs), seeded per pair, so phrasing varies ("Delete the red car.", "Swap the dog for a
cat.") but a rerun writes the same words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from retake.data.records import STATUS_DROPPED, STATUS_OK, stable_seed
from retake.data.stages.trivial_filter import TrivialFilter
from retake.data.verbs import IMPERATIVE_VERBS, rewrite_verbs
from retake.eval.psnr import psnr
from retake.flatland.palette import SHAPES
from retake.synth.filters import Verdict
from retake.synth.masks import grow
from retake.synth.recipes import PairsConfig
from retake.synth.records import MaskedObject

TEMPLATES = {
    "remove": "Remove the {label}.",
    "add": "Add {article_label} in the scene.",
    "replace": "Replace the {label} with {caption}.",
}
REBALANCE_STAGE = "rebalance"
OUTSIDE_CHANGE = 24.0  # grey levels: a change outside the mask above codec noise


@dataclass(frozen=True)
class Replacement:
    """What replaces an object: its caption (with an article) and, for the Flatland oracle, the edit."""

    caption: str
    edit: dict[str, Any] | None = None


def with_article(noun: str) -> str:
    """'red star' -> 'a red star', 'orange ring' -> 'an orange ring' (kept when it has one already)."""
    if noun.split()[0].lower() in ("a", "an", "the"):
        return noun
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def instruction(edit_type: str, label: str, caption: str = "", *, seed: int) -> str:
    """The instruction of one pair, its verb drawn with `seed`."""
    text = TEMPLATES[edit_type].format(label=label, article_label=with_article(label), caption=caption)
    return rewrite_verbs(text, mode="diversify", rng=random.Random(seed))


def replacement(
    obj: MaskedObject, config: PairsConfig, *, seed: int, free_colours: list[str] | None
) -> Replacement:
    """The new object for a replace pair: a caption from the config, or for a Flatland object (`free_colours`
    given: colours its scene never shows) another shape in an unused colour, as a structured edit too."""
    rng = random.Random(seed)
    if free_colours is None:
        return Replacement(with_article(rng.choice(config.replace_captions)))
    shape = rng.choice([s for s in SHAPES if s != obj.info["shape"]])
    colour = rng.choice(free_colours)
    edit = {
        "kind": "replace",
        "target_colour": obj.info["colour"],
        "target_shape": obj.info["shape"],
        "new_shape": shape,
        "new_colour": colour,
    }
    return Replacement(with_article(f"{colour} {shape}"), edit)


def flatland_edit(edit_type: str, obj: MaskedObject) -> dict[str, Any] | None:
    """The structured edit a remove or add pair of a Flatland object makes (None for other sources)."""
    if "colour" not in obj.info:
        return None
    if edit_type == "remove":
        return {"kind": "remove", "target_colour": obj.info["colour"], "target_shape": obj.info["shape"]}
    return {"kind": "add", "new_shape": obj.info["shape"], "new_colour": obj.info["colour"]}


def instruction_reason(text: str, config: PairsConfig) -> Verdict:
    """Why an instruction is unfit (the curation pipeline's trivial filter, plus an imperative first verb)."""
    why = TrivialFilter(min_words=config.min_words, max_words=config.max_words).reason(text)
    if why is not None:
        return why, text[:60]
    first = "".join(c for c in text.split()[0].lower() if c.isalpha())
    if first not in IMPERATIVE_VERBS:
        return "not_imperative", text[:60]
    return None


def pair_metrics(
    source: np.ndarray, target: np.ndarray, region: np.ndarray, painted: np.ndarray
) -> dict[str, float]:
    """outside_psnr (dB, outside the grown mask `region` (F, H, W) bool) and outside_blob (the largest
    connected patch changed by more than OUTSIDE_CHANGE grey levels outside it, as a share of the frame: a
    small but real change that PSNR averages away), inside_change (mean |target - source| inside the
    region, grey levels), and fill_sharpness: how sharp the inpainted clip `painted` is inside the region
    against just around it (a blurry fill scores low; a flat surrounding gives 1)."""
    diff = np.abs(target.astype(np.float32) - source.astype(np.float32)).mean(axis=-1)  # (F, H, W)
    outside = ~region
    return {
        "outside_psnr": psnr(source, target, where=outside) if outside.any() else float("nan"),
        "outside_blob": largest_blob((diff > OUTSIDE_CHANGE) & outside),
        "inside_change": float(diff[region].mean()) if region.any() else 0.0,
        "fill_sharpness": fill_sharpness(painted, region),
    }


def largest_blob(masks: np.ndarray) -> float:
    """Area of the largest 8-connected component of any frame of (F, H, W) bool masks, over H * W."""
    largest = 0
    for mask in masks:
        if mask.any():
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
            largest = max(largest, int(stats[1:, cv2.CC_STAT_AREA].max()))
    return largest / float(masks.shape[1] * masks.shape[2])


def fill_sharpness(painted: np.ndarray, region: np.ndarray, band: int = 8, floor: float = 1.0) -> float:
    """Median |Laplacian| of `painted` (F, H, W, 3) inside `region` over that in a `band`-px ring around it,
    both at least `floor` grey levels (flat surroundings, which any fill matches, score 1). Medians, so the
    edges of other objects in the ring do not count as texture."""
    ring = grow(region, band) & ~region
    inside, around = [], []
    for frame, mask, near in zip(painted, region, ring, strict=True):
        detail = np.abs(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_32F, ksize=1))
        if mask.any() and near.any():
            inside.append(float(np.median(detail[mask])))
            around.append(float(np.median(detail[near])))
    if not inside:
        return 1.0
    return min(1.0, max(float(np.mean(inside)), floor) / max(float(np.mean(around)), floor))


def pair_reason(metrics: dict[str, float], config: PairsConfig) -> Verdict:
    """Why a pair fails the quality filter, or None."""
    if metrics["inside_change"] < config.min_inside_change:
        return "no_visible_edit", f"mean change {metrics['inside_change']:.1f} < {config.min_inside_change}"
    if np.isfinite(metrics["outside_psnr"]) and metrics["outside_psnr"] < config.min_outside_psnr:
        return (
            "changed_outside",
            f"PSNR outside the mask {metrics['outside_psnr']:.1f} dB < {config.min_outside_psnr}",
        )
    if metrics["fill_sharpness"] < config.min_sharpness_ratio:
        return "blurry_fill", f"fill sharpness {metrics['fill_sharpness']:.2f} < {config.min_sharpness_ratio}"
    return None


def rebalance(rows: list[dict[str, Any]], config: PairsConfig, seed: int) -> list[dict[str, Any]]:
    """Rows with the edit-type mix brought to `config.proportions`: the largest dataset whose type counts
    match the target shares (within one pair) that the kept pairs allow; the pairs over a type's share are
    marked dropped at stage "rebalance". A type with no pair at all is left out of the mix (rather than
    emptying the dataset). Which pairs stay is drawn by a hash of (seed, pair_id), so the result depends on
    the rows alone, not on their order or the shards."""
    ok = [r for r in rows if r["status"] == STATUS_OK]
    counts = {t: sum(r["edit_type"] == t for r in ok) for t in config.types}
    present = [t for t in config.types if counts[t] > 0 and config.share(t) > 0]
    if not present:
        return rows
    weight = sum(config.share(t) for t in present)
    shares = {t: config.share(t) / weight if t in present else 0.0 for t in config.types}
    total = min(counts[t] / shares[t] for t in present)
    quota = {t: min(counts[t], int(np.floor(total * shares[t] + 1e-9))) for t in config.types}
    ranked: dict[str, list[str]] = {}
    for row in ok:
        ranked.setdefault(row["edit_type"], []).append(row["pair_id"])
    keep = set()
    for edit_type, ids in ranked.items():
        ids.sort(key=lambda pid: stable_seed(seed, "rebalance", pid))
        keep.update(ids[: quota.get(edit_type, 0)])
    out = []
    for row in rows:
        if row["status"] == STATUS_OK and row["pair_id"] not in keep:
            share = f"{shares.get(row['edit_type'], 0):.0%}"
            row = {
                **row,
                "status": STATUS_DROPPED,
                "stage": REBALANCE_STAGE,
                "reason": "over_target",
                "detail": f"{row['edit_type']} above its target share {share}",
            }
        out.append(row)
    return out
