"""Processes, devices and model wrapping: one process on CPU/GPU, DDP under torchrun, FSDP for large models.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR; `setup` joins the process group from them (gloo
on CPU, nccl on CUDA) and picks the device (cuda:LOCAL_RANK). `wrap_model` applies the strategy:

- ddp: `DistributedDataParallel`; every rank holds the whole model, gradients are averaged.
- fsdp: FSDP2 `fully_shard` on every transformer block, then the root: parameters, gradients and optimiser
  state are sharded over the ranks; bf16 parameters in compute with float32 gradient reduction when the run
  uses bf16. Checkpoints gather full state dicts through `torch.distributed.checkpoint.state_dict`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# Block classes FSDP shards one by one (each gathers its parameters only while it runs).
FSDP_BLOCKS = ("DualStreamBlock", "SingleStreamBlock", "HunyuanVideoTokenRefiner")


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs. strategy: none | ddp | fsdp."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    strategy: str
    owns_group: bool = False  # this process group was started by `setup` (and is ended by `teardown`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is in use (collectives run, even for a single rank)."""
        return self.strategy != "none"


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'cpu', 'cuda' (this rank's GPU), 'cuda:N' or 'auto' (CUDA when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available (use device = 'cpu')")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {name!r}")
    return torch.device("cpu")


def setup(strategy: str = "auto", device: str = "cpu", *, timeout_s: float = 1800.0) -> DistEnv:
    """Join torchrun's process group when there is one; pick this rank's device and the strategy."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if strategy == "auto":
        strategy = "ddp" if world > 1 else "none"
    if strategy == "ddp" and world == 1:
        strategy = "none"  # a single process needs no wrapper
    if strategy not in ("none", "ddp", "fsdp"):
        raise ValueError(f"distributed strategy must be auto, none, ddp or fsdp, got {strategy!r}")
    if strategy == "none" and world > 1:
        raise ValueError(f"{world} processes were started but distributed = 'none'; use 'ddp' or 'fsdp'")
    owns = False
    if (world > 1 or strategy == "fsdp") and not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        if "MASTER_ADDR" not in os.environ:
            raise ValueError(
                "distributed training needs torchrun (MASTER_ADDR is not set); see docs/training.md"
            )
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
        owns = True
    return DistEnv(rank, world, local_rank, target, strategy, owns)


def teardown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv, *, param_dtype: torch.dtype | None = None) -> nn.Module:
    """The module the training step calls: the model itself, a DDP wrapper, or the model sharded in place."""
    if env.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [env.device.index] if env.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if env.strategy == "fsdp":
        return shard_model(model, env, param_dtype=param_dtype)
    return model


def shard_model(model: nn.Module, env: DistEnv, *, param_dtype: torch.dtype | None = None) -> nn.Module:
    """FSDP2: shard each transformer block, then the rest (embedders, final layer) as the root unit."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(env.device.type, (env.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for module in model.modules():
        if type(module).__name__ in FSDP_BLOCKS:
            fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


@contextmanager
def gradient_sync(wrapped: nn.Module, env: DistEnv, *, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps that are not the last one."""
    if env.strategy == "ddp" and not sync:
        with wrapped.no_sync():
            yield
    elif env.strategy == "fsdp":
        wrapped.set_requires_gradient_sync(sync)
        yield
    else:
        with nullcontext():
            yield


def all_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of a tensor over ranks (the tensor itself on one process)."""
    if not env.distributed:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / env.world_size


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True when `flag` is true on any rank (every rank gets the same answer, so all take the same branch)."""
    if not env.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's `obj` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
