"""Devices named by users: parsed and checked before any model is loaded onto them."""

from __future__ import annotations

import torch


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device this machine has; ValueError naming it otherwise (a typo, or CUDA / MPS
    asked for where this torch build or machine has none)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device name (cpu, cuda, cuda:N, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: retake runs on cpu, cuda or mps")
    return parsed
