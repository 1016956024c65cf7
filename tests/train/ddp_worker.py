"""Run by torchrun in test_train_distributed.py: train one stage under DDP/FSDP and dump this rank's weights.

usage: torchrun --nproc-per-node N ddp_worker.py RUN.json DUMP_DIR (RUN.json: a run table, as TOML would give)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from retake.train.config import parse_run_config
from retake.train.distributed import setup, teardown
from retake.train.loop import StageTrainer


def main(config_path: str, dump: str) -> None:
    torch.set_num_threads(1)
    config = parse_run_config(json.loads(Path(config_path).read_text()))
    env = setup(config.distributed, config.device)
    try:
        trainer = StageTrainer(config, 0, env, progress=False)
        trainer.run()
        # Each rank's own view of the weights (full tensors; under FSDP gathered on every rank).
        state = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True))
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in state.items()},
            Path(dump) / f"rank{env.rank}.safetensors",
        )
    finally:
        teardown(env)


if __name__ == "__main__":
    main(*sys.argv[1:])
