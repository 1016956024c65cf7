"""Stage `pairing`: pick (src, tgt) = (original, pseudo-edited) pairs of clips from the same scene.

Per scene, `pairs_per_scene` ordered pairs are drawn without replacement from all clip pairs (both time
directions when allowed), with a generator seeded from the video's seed and the scene index: the same input
gives the same pairs whatever executor or worker runs it.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from retake.data.records import Meta, Pair, Sample, StageResult, stable_seed


class PairClips:
    name = "pairing"

    def __init__(self, *, pairs_per_scene: int, both_directions: bool) -> None:
        self.pairs_per_scene = pairs_per_scene
        self.both_directions = both_directions

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        pairs: list[Pair] = []
        few = 0
        for scene in meta.scenes:
            clips = [c for c in meta.clips if c.scene == scene.index]
            if len(clips) < 2:
                few += 1
                continue
            combos = (
                itertools.permutations(clips, 2) if self.both_directions else itertools.combinations(clips, 2)
            )
            rng = random.Random(stable_seed(sample.seed, "pairs", scene.index))
            options = list(combos)
            chosen = sorted(
                rng.sample(options, min(self.pairs_per_scene, len(options))),
                key=lambda p: (p[0].index, p[1].index),
            )
            for i, (src, tgt) in enumerate(chosen):
                seed = stable_seed(sample.seed, "pair", scene.index, i)
                pairs.append(Pair(index=i, scene=scene.index, src=src, tgt=tgt, seed=seed))
        meta = replace(meta, pairs=tuple(pairs)).dropped(self.name, "too_few_clips", "scene", few)
        return sample, meta, None
