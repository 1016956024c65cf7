"""Muon on the transformer's hidden matrices, AdamW on everything else, as one `torch.optim.Optimizer`.

Muon (Jordan et al. 2024; "Muon is Scalable for LLM Training", Liu et al. 2025) replaces each 2-D weight's
momentum by its nearest semi-orthogonal matrix (five Newton-Schulz iterations) before the step. Its authors
keep embeddings, the output head, biases and norms on AdamW; here the Muon matrices are the 2-D weights
inside the transformer's blocks (dual-stream, single-stream and token-refiner blocks), and the patch and text
embedders, time embeddings and the output projection stay on AdamW.

One optimiser with two kinds of parameter group (group["muon"] True/False) rather than two optimisers: the
learning-rate scheduler, gradient clipping and the checkpoint code (`torch.distributed.checkpoint`) all take a
single optimiser and need nothing else. The scheduler scales both learning rates by the same factor.

The Newton-Schulz iterations run in the parameter's dtype (fp32 here). `torch.optim.Muon` runs them in bf16,
which on CPU made a flatland-s step about 1 s slower; these matrices are small enough for fp32 everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

# Keller Jordan's quintic iteration: pushes singular values towards ~1 in five steps without converging exactly.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalise(update: Tensor, steps: int = NS_STEPS) -> Tensor:
    """The nearest semi-orthogonal matrix to `update` (2-D), approximately: singular values land in ~[0.7, 1.2]."""
    if update.ndim != 2:
        raise ValueError(f"Muon orthogonalises 2-D matrices, got shape {tuple(update.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = update / (update.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1: inside the iteration's basin
    tall = x.shape[0] > x.shape[1]
    if tall:  # iterate on the short side: (rows x rows) Gram matrices
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def is_hidden_matrix(name: str, param: Tensor) -> bool:
    """Muon's share of an `InContextTransformer`: 2-D weights inside its blocks, LoRA adapters excepted."""
    return param.ndim == 2 and "blocks." in name and "lora_" not in name


class MuonAdamW(torch.optim.Optimizer):
    """Muon for groups with `muon=True` (lr, momentum, nesterov, weight_decay), AdamW for the others (lr,
    betas, eps, weight_decay). Use `muon_adamw(model, ...)` to split a model's parameters."""

    def __init__(self, groups: Iterable[dict], *, momentum: float = 0.95, nesterov: bool = True) -> None:
        defaults = {
            "lr": 1e-3,
            "weight_decay": 0.0,
            "betas": (0.9, 0.999),
            "eps": 1e-8,
            "momentum": momentum,
            "nesterov": nesterov,
            "muon": False,
        }
        super().__init__(list(groups), defaults)
        for group in self.param_groups:
            if group["muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon groups take 2-D parameters only")

    @torch.no_grad()
    def step(self, closure=None):  # torch.optim.Optimizer.step signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if group["muon"]:
                    self._muon(param, group)
                else:
                    self._adamw(param, group)
        return loss

    def _muon(self, param: Tensor, group: dict) -> None:
        state = self.state[param]
        buffer = state.setdefault("momentum_buffer", torch.zeros_like(param))
        buffer.mul_(group["momentum"]).add_(param.grad)
        update = param.grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer
        rows, cols = param.shape
        # Keller's scale: the orthogonalised update's RMS is ~1/sqrt(max side); tall matrices get it back
        scale = max(1.0, rows / cols) ** 0.5
        param.mul_(1 - group["lr"] * group["weight_decay"])
        param.add_(orthogonalise(update), alpha=-group["lr"] * scale)

    def _adamw(self, param: Tensor, group: dict) -> None:
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = float(state["step"])
        state["exp_avg"].lerp_(param.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
        denom = (state["exp_avg_sq"] / (1 - beta2**step)).sqrt_().add_(group["eps"])
        param.mul_(1 - group["lr"] * group["weight_decay"])
        param.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1**step))


def muon_adamw(
    model: nn.Module,
    *,
    lr: float,
    muon_lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> MuonAdamW:
    """A `MuonAdamW` over `model`'s trainable parameters: hidden matrices on Muon at `muon_lr`, the rest on
    AdamW at `lr`. Raises ValueError when the model has no hidden matrix to give Muon."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if is_hidden_matrix(n, p)]
    rest = [p for n, p in named if not is_hidden_matrix(n, p)]
    if not hidden:
        raise ValueError(
            "optimizer 'muon' found no trainable 2-D weight inside a transformer block (LoRA adapters train "
            "with AdamW: use optimizer = 'adamw' with LoRA)"
        )
    # AdamW's group first: the trainer logs the first group's learning rate, the config's `lr`
    groups = [
        {"params": rest, "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "muon": False},
        {"params": hidden, "lr": muon_lr, "weight_decay": weight_decay, "muon": True},
    ]
    return MuonAdamW([g for g in groups if g["params"]])
