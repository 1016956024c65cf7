"""LoRA through peft: adapters on the attention/MLP linears named in `LoraSettings.targets`, only they train,
and what is saved is merged (peft `merge` + unload) so it loads as a plain `InContextTransformer`.

Targets are module-name suffixes; a `*` stands for one name part, so "single_transformer_blocks.*.proj_out"
adapts the single-stream blocks' output projection but not the final layer's `proj_out`.
"""

from __future__ import annotations

import re

from torch import Tensor, nn

from retake.train.config import LoraSettings

ADAPTER = "default"


def target_pattern(targets: tuple[str, ...]) -> str:
    """A regex peft matches against full module names (`re.fullmatch`): any of the suffixes."""
    alternatives = "|".join(re.escape(t).replace(r"\*", r"[^.]+") for t in targets)
    return rf"(?:.*\.)?(?:{alternatives})"


def apply_lora(model: nn.Module, settings: LoraSettings) -> int:
    """Add a LoRA adapter to `model` in place (base weights frozen); returns how many linears it adapts.

    The adapter's B matrices start at zero, so the model's output is unchanged until it trains.
    """
    from peft import LoraConfig

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha if settings.alpha is not None else settings.rank,
        lora_dropout=settings.dropout,
        target_modules=target_pattern(settings.targets),
    )
    try:
        model.add_adapter(config, adapter_name=ADAPTER)
    except ValueError as exc:  # peft: no module matched
        raise ValueError(
            f"LoRA targets {list(settings.targets)} match no module of the model: {exc}"
        ) from None
    return sum(1 for name, _ in model.named_modules() if name.endswith(f"lora_A.{ADAPTER}"))


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the adapters into the base weights and remove them (peft's merge-and-unload), in place."""
    if not has_lora(model):
        return model
    model.fuse_lora()  # W <- W + scale * B @ A in every adapted linear
    model.unload_lora()  # adapted linears -> their (now merged) base nn.Linear
    return model


def lora_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The adapter tensors of a state dict."""
    return {k: v for k, v in state.items() if "lora_" in k}
