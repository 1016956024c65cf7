"""Stages `propagate` and `quality_filter`: turn each chosen edited first frame into an edited clip (a still's
edit is animated along the still's own camera path instead), then run the second filter on it."""

from __future__ import annotations

from retake.data.records import StageError
from retake.eval.warp_error import mean_or_nan, warp_errors
from retake.opticalflow import FlowConfig, video_flow
from retake.synth import stills
from retake.synth.filters import edit_metrics, edit_reason, frame_metrics
from retake.synth.propagate import Propagator, Request
from retake.synth.recipes import QualityConfig, StillsConfig
from retake.synth.records import SynthMeta, SynthSample, Triplet
from retake.synth.stages.first_frame import each_live
from retake.synth.stages.source import still_path

StageResult = tuple[SynthSample, SynthMeta, StageError | None]


class Propagate:
    name = "propagate"

    def __init__(self, propagator: Propagator, still_config: StillsConfig) -> None:
        self.propagator = propagator
        self.stills = still_config

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        def run(triplet: Triplet) -> Triplet:
            edited = sample.chosen.pop(triplet.index)
            if meta.kind == "image":
                size = sample.frames.shape[1:3]
                _, clip = stills.animate_pair(sample.still, edited, still_path(sample, self.stills), size)
            else:
                request = Request(
                    sample.frames,
                    edited,
                    triplet.instruction,
                    meta.fps or 8.0,
                    triplet.seed,
                    path=sample.path,
                    edit=triplet.edit,
                    frame_indices=meta.frame_indices,
                )
                clip = self.propagator.propagate(request)
            if clip.shape != sample.frames.shape:
                raise ValueError(f"propagation gave {clip.shape}, the source is {sample.frames.shape}")
            sample.targets[triplet.index] = clip
            return triplet

        return sample, each_live(meta, self.name, run), None


class QualityFilter:
    name = "quality_filter"

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self.flow = FlowConfig(preset="fast", max_side=config.flow_max_side)

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        if not meta.live:
            return sample, meta, None
        source = sample.frames
        flow = video_flow(source, self.flow) if len(source) > 1 else None  # once per input, for every edit
        quality = frame_metrics(source)
        own_error = mean_or_nan(warp_errors(source, flow)) if flow is not None else 0.0

        def check(triplet: Triplet) -> Triplet:
            metrics = edit_metrics(source, sample.targets[triplet.index], flow, quality, own_error, self.flow)
            triplet = triplet.measured(**metrics)
            verdict = edit_reason(metrics, self.config)
            if verdict is None:
                return triplet
            sample.targets.pop(triplet.index)
            return triplet.dropped(self.name, *verdict)

        return sample, each_live(meta, self.name, check), None
