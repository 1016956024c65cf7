"""Training: run configs (TOML), triplet datasets and the latent cache, the training step, the resumable
multi-stage trainer (DDP/FSDP, LoRA, EMA) and its checkpoints. See docs/training.md.

Names are loaded lazily so that importing one submodule (say `retake.train.config`) does not pull in torch's
distributed stack or diffusers.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RunConfig": "retake.train.config",
    "StageConfig": "retake.train.config",
    "OptimConfig": "retake.train.config",
    "TricksConfig": "retake.train.config",
    "DataConfig": "retake.train.config",
    "LoraSettings": "retake.train.config",
    "ModelConfig": "retake.train.config",
    "INSVIE_TRICKS": "retake.train.config",
    "load_run_config": "retake.train.config",
    "parse_run_config": "retake.train.config",
    "Triplet": "retake.train.datasets",
    "SampleError": "retake.train.datasets",
    "open_triplets": "retake.train.datasets",
    "LatentSample": "retake.train.encode",
    "EncodingDataset": "retake.train.encode",
    "LatentCache": "retake.train.cache",
    "LatentCaches": "retake.train.cache",
    "open_caches": "retake.train.cache",
    "build_cache": "retake.train.cache",
    "cache_dataset": "retake.train.cache",
    "write_cache": "retake.train.cache",
    "train": "retake.train.loop",
    "StageTrainer": "retake.train.loop",
    "StageStart": "retake.train.loop",
    "StageResult": "retake.train.loop",
    "StepInfo": "retake.train.loop",
    "TrainResult": "retake.train.loop",
    "TrainingInterrupted": "retake.train.loop",
    "NonFiniteLossError": "retake.train.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retake.train' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
