"""`InContextTransformer`: HunyuanVideo's MMDiT with in-context source conditioning, as a diffusers model.

The network maps (noisy target latents, timestep, text, pooled text, guidance, source) -> target velocity and
nothing else. Structure (diffusers' parameter names throughout, so its state dicts load strictly):

    x_embedder (Conv3d patches)  context_embedder (token refiner)  time_text_embed (t + pooled text + guidance)
    transformer_blocks: dual-stream blocks      single_transformer_blocks: single-stream blocks
    norm_out + proj_out: final layer, target tokens only

How the source enters and how its tokens are modulated comes from `retake.model.conditioning`; who attends to
whom from `retake.model.attention`. With no source (or conditioning 'none') the output equals diffusers'
`HunyuanVideoTransformer3DModel` with the same weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNormContinuous
from diffusers.models.transformers.transformer_hunyuan_video import (
    HunyuanVideoConditionEmbedding,
    HunyuanVideoPatchEmbed,
    HunyuanVideoTokenRefiner,
)
from torch import Tensor, nn

from retake.flow.schedule import TIMESTEP_SCALE
from retake.model.attention import AttentionMask, attention_mask
from retake.model.blocks import BlockOutput, DualStreamBlock, SingleStreamBlock, TokenGroup
from retake.model.cache import SourceCache
from retake.model.conditioning import SequenceSource, conditioning_for
from retake.model.config import AttentionMode, Prediction, Prior, TransformerConfig
from retake.model.layers import Grid, Rope, patch_grid, rope_table, unpatchify

# Below this t the velocity of a clean-latent prediction divides by MIN_T instead (as Li & He 2025 clip 1 - t):
# (x_t - x0) / t would blow up, and a sampler's last step from t <= MIN_T lands on the prediction exactly.
MIN_T = 0.05


def sample_to_velocity(x0: Tensor, noisy: Tensor, timestep: Tensor) -> Tensor:
    """v = (x_t - x0) / max(t, MIN_T) for a predicted clean x0 (B, C, F, H, W); timestep (B,) is t * 1000."""
    t = (timestep.float() / TIMESTEP_SCALE).clamp(min=MIN_T).view(-1, *([1] * (x0.ndim - 1)))
    return ((noisy.float() - x0.float()) / t).to(x0.dtype)


def _per_sample(value: Tensor | float, name: str, batch: int, device: torch.device) -> Tensor:
    """`value` as a (B,) tensor: a number, a 0-d or a (1,) tensor is the same for every sample."""
    tensor = torch.as_tensor(value, device=device)
    if tensor.ndim > 1 or tensor.numel() not in (1, batch):
        raise ValueError(
            f"{name} must be a number or a (B,) tensor with B = {batch}, got shape {tuple(tensor.shape)}"
        )
    return tensor.reshape(-1).expand(batch)


class InContextTransformer(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """HunyuanVideo MMDiT with the source as in-context tokens (ICVE), as extra channels (InsViE) or absent.

    Construct from a `TransformerConfig` with `InContextTransformer.from_spec(config)` or
    `retake.model.build_transformer(preset)`; keyword arguments mirror the config's fields.
    """

    _supports_gradient_checkpointing = True
    _skip_layerwise_casting_patterns: ClassVar[list[str]] = ["x_embedder", "context_embedder", "norm"]
    _no_split_modules: ClassVar[list[str]] = [
        "DualStreamBlock",
        "SingleStreamBlock",
        "HunyuanVideoPatchEmbed",
        "HunyuanVideoTokenRefiner",
    ]
    _repeated_blocks: ClassVar[list[str]] = ["DualStreamBlock", "SingleStreamBlock"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        out_channels: int | None = None,
        num_attention_heads: int = 24,
        attention_head_dim: int = 128,
        num_layers: int = 20,
        num_single_layers: int = 40,
        num_refiner_layers: int = 2,
        mlp_ratio: float = 4.0,
        patch_size: int = 2,
        patch_size_t: int = 1,
        guidance_embeds: bool = True,
        text_embed_dim: int = 4096,
        pooled_projection_dim: int = 768,
        rope_theta: float = 256.0,
        rope_axes_dim: tuple[int, int, int] = (16, 56, 56),
        conditioning: str = "sequence",
        attention: str = "full",
        source_time_offset: int | None = None,
        prior: str = "noise",
        prediction: str = "velocity",
    ) -> None:
        super().__init__()
        spec = TransformerConfig(
            in_channels=in_channels,
            out_channels=out_channels,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            num_layers=num_layers,
            num_single_layers=num_single_layers,
            num_refiner_layers=num_refiner_layers,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            guidance_embeds=guidance_embeds,
            text_embed_dim=text_embed_dim,
            pooled_projection_dim=pooled_projection_dim,
            rope_theta=rope_theta,
            rope_axes_dim=rope_axes_dim,
            conditioning=conditioning,
            attention=attention,
            source_time_offset=source_time_offset,
            prior=prior,
            prediction=prediction,
        )
        self.spec = spec
        self.source_entry, self.source_modulation = conditioning_for(spec)
        dim, heads, head_dim = spec.inner_dim, num_attention_heads, attention_head_dim
        patch = (patch_size_t, patch_size, patch_size)
        self.x_embedder = HunyuanVideoPatchEmbed(patch, self.source_entry.patch_in_channels(in_channels), dim)
        self.context_embedder = HunyuanVideoTokenRefiner(text_embed_dim, heads, head_dim, num_refiner_layers)
        self.time_text_embed = HunyuanVideoConditionEmbedding(dim, pooled_projection_dim, guidance_embeds)
        self.transformer_blocks = nn.ModuleList(
            [DualStreamBlock(heads, head_dim, mlp_ratio) for _ in range(num_layers)]
        )
        self.single_transformer_blocks = nn.ModuleList(
            [SingleStreamBlock(heads, head_dim, mlp_ratio) for _ in range(num_single_layers)]
        )
        self.norm_out = AdaLayerNormContinuous(dim, dim, elementwise_affine=False, eps=1e-6)
        self.proj_out = nn.Linear(dim, patch_size_t * patch_size * patch_size * spec.latent_out_channels)
        if spec.prediction is Prediction.RESIDUAL:
            # A change of zero: a fresh residual model starts as the identity edit (loaded weights replace it).
            nn.init.zeros_(self.proj_out.weight)
            nn.init.zeros_(self.proj_out.bias)
        self.gradient_checkpointing = False

    @classmethod
    def from_spec(cls, spec: TransformerConfig) -> InContextTransformer:
        return cls(**spec.to_kwargs())

    def set_attention_mode(self, mode: AttentionMode | str) -> None:
        """Switch full <-> one-way attention in place (same weights; e.g. to compare both on one model)."""
        spec = self._respec(attention=str(mode))
        self.source_entry, self.source_modulation = conditioning_for(spec)

    def set_prior(self, prior: Prior | str) -> None:
        """Switch the flow's start point in place (same weights; e.g. to fine-tune a noise-prior model into a
        source-prior one). The network is unchanged; training and sampling read `spec.prior`."""
        self._respec(prior=str(prior))

    def _respec(self, **changes: str) -> TransformerConfig:
        """Validate a spec with `changes`, make it this model's and its saved config's; returns it."""
        spec = TransformerConfig(**{**self.spec.to_kwargs(), **changes})
        self.register_to_config(**{name: str(getattr(spec, name)) for name in changes})
        self.spec = spec
        return spec

    # ------------------------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------------------------
    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_attention_mask: Tensor | None,
        pooled_projections: Tensor,
        guidance: Tensor | None = None,
        source: Tensor | None = None,
        source_cache: SourceCache | None = None,
    ) -> Tensor:
        """Velocity of the target. Shapes:

        hidden_states (B, C, F, H, W) noisy target latents; timestep (B,) float, sigma * 1000;
        encoder_hidden_states (B, L, D_text); encoder_attention_mask (B, L) 1 = real token, right-padded or
        not; pooled_projections (B, D_pooled); guidance (B,) embedded guidance * 1000 when the config has it;
        source (B, C, F_src, H, W) clean source latents; source_cache from `build_source_cache` (one-way).
        A batch of one (text, mask, pooled, timestep or guidance; the last two also as a number) serves every
        sample. Returns (B, C_out, F, H, W).
        """
        timestep, guidance = self._check_inputs(hidden_states, timestep, guidance, source, source_cache)
        self._check_text(encoder_hidden_states, encoder_attention_mask, pooled_projections, hidden_states)
        grid = patch_grid(hidden_states.shape, self.spec.patch_size_t, self.spec.patch_size)
        temb, _ = self.time_text_embed(timestep, pooled_projections, guidance)  # (B, D)
        target_tokens, source_tokens = self.source_entry.embed(self.x_embedder, hidden_states, source)
        text, text_mask = self._text_tokens(encoder_hidden_states, timestep, encoder_attention_mask)

        groups = [TokenGroup(target_tokens, temb, self._rope(grid)), TokenGroup(text, temb, text=True)]
        num_source = 0
        if source_tokens is not None:
            modulation = self.source_modulation
            semb = modulation.source_vector(self.time_text_embed, timestep, pooled_projections, guidance)
            groups.insert(0, self._source_group(source_tokens, source.shape, grid, semb))
            num_source = source_tokens.shape[1]
        elif source_cache is not None:
            self._source_offset(grid, source_cache.grid)  # validates shared positions
            num_source = source_cache.num_tokens

        mask = attention_mask(
            text_mask,
            num_source=num_source,
            num_target=target_tokens.shape[1],
            mode=self.spec.attention,
            source_cached=source_cache is not None,
        )
        tokens = self._run_blocks(groups, mask, source_cache, hidden_states.shape[0])
        target = self.proj_out(self.norm_out(tokens[-2], temb))  # [source?, target, text] -> (B, N, pt*p*p*C)
        out = unpatchify(target, grid, self.spec.patch_size_t, self.spec.patch_size)
        if self.spec.prediction is Prediction.VELOCITY:
            return out
        if self.spec.prediction is Prediction.RESIDUAL and source is not None:
            # x0 = source + change; without a source (guidance's unconditional branch) the change is added to
            # zeros, as source dropout trains it.
            out = source.to(out.dtype) + out
        return sample_to_velocity(out, hidden_states, timestep)

    def build_source_cache(self, source: Tensor, *, guidance: Tensor | None = None) -> SourceCache:
        """Per-block source K/V for one-way attention: run the source tokens alone through every block.

        source: (B, C, F_src, H, W) clean latents; guidance (B,) as passed to forward (when the config embeds
        guidance). Runs under the caller's grad mode; wrap in `torch.no_grad()` for inference.
        """
        if self.spec.attention is not AttentionMode.ONE_WAY:
            raise ValueError(
                f"a source cache needs attention 'one-way', this model uses '{self.spec.attention}'"
            )
        self._check_guidance(guidance)
        zeros = torch.zeros(source.shape[0], device=source.device)
        semb = self.source_modulation.source_vector(self.time_text_embed, zeros, None, guidance)
        group = self._source_group(
            self.source_entry.embed_source(self.x_embedder, source), source.shape, None, semb
        )
        mask = AttentionMask(num_keys=group.tokens.shape[1])  # the source alone: nothing to mask
        keys, values = [], []
        for block in self._blocks():
            out = self._call_block(block, [group], mask, None)
            group = TokenGroup(out.tokens[0], group.emb, group.rope)
            keys.append(out.keys)
            values.append(out.values)
        grid = patch_grid(source.shape, self.spec.patch_size_t, self.spec.patch_size)
        return SourceCache(tuple(keys), tuple(values), grid, guidance)

    # ------------------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------------------
    def _blocks(self) -> list[nn.Module]:
        return [*self.transformer_blocks, *self.single_transformer_blocks]

    def _call_block(
        self,
        block: nn.Module,
        groups: list[TokenGroup],
        mask: AttentionMask,
        prefix: tuple[Tensor, Tensor] | None,
    ) -> BlockOutput:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, groups, mask, prefix)
        return block(groups, mask, prefix)

    def _run_blocks(
        self, groups: list[TokenGroup], mask: AttentionMask, cache: SourceCache | None, batch: int
    ) -> list[Tensor]:
        tokens = [g.tokens for g in groups]
        for index, block in enumerate(self._blocks()):
            prefix = None if cache is None else cache.layer(index, batch)
            current = [TokenGroup(t, g.emb, g.rope, g.text) for t, g in zip(tokens, groups, strict=True)]
            tokens = self._call_block(block, current, mask, prefix).tokens
        return tokens

    def _source_group(
        self, tokens: Tensor, source_shape: torch.Size, target_grid: Grid | None, semb: Tensor
    ) -> TokenGroup:
        """Source tokens with their modulation vector and (shared or offset) RoPE positions."""
        grid = patch_grid(source_shape, self.spec.patch_size_t, self.spec.patch_size)
        return TokenGroup(tokens, semb, self._rope(grid, self._source_offset(target_grid, grid)))

    def _rope(self, grid: Grid, time_offset: int = 0) -> Rope:
        device = self.x_embedder.proj.weight.device
        return rope_table(
            grid, self.spec.rope_axes_dim, self.spec.rope_theta, time_offset=time_offset, device=device
        )

    def _source_offset(self, target_grid: Grid | None, source_grid: Grid) -> int:
        assert isinstance(self.source_entry, SequenceSource)  # only sequence conditioning makes source tokens
        return self.source_entry.source_time_offset(target_grid, source_grid)

    def _text_tokens(self, text: Tensor, timestep: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Refine the text tokens, then drop columns that are padding in every sample.

        Dropped tokens are never keys (padding) and their outputs are never read, so this changes no target
        value; it lets a batch of one (or equal-length prompts) run attention without any mask.
        """
        refined = self.context_embedder(text, timestep, mask)  # (B, L, D)
        if mask is None:  # no padding: every token is real
            return refined, torch.ones(refined.shape[:2], dtype=torch.bool, device=refined.device)
        keep = mask.bool().any(dim=0)
        if not bool(keep.all()):
            refined, mask = refined[:, keep], mask[:, keep]
        return refined, mask

    def _check_inputs(
        self,
        hidden: Tensor,
        timestep: Tensor | float,
        guidance: Tensor | float | None,
        source: Tensor | None,
        cache: SourceCache | None,
    ) -> tuple[Tensor, Tensor | None]:
        """Validate the latent inputs; returns timestep and guidance as (B,) tensors."""
        self._check_hidden(hidden, source)
        batch, device = hidden.shape[0], hidden.device
        timestep = _per_sample(timestep, "timestep", batch, device)
        guidance = None if guidance is None else _per_sample(guidance, "guidance", batch, device)
        self._check_guidance(guidance)
        self._check_source(hidden, guidance, source, cache)
        return timestep, guidance

    def _check_hidden(self, hidden: Tensor, source: Tensor | None) -> None:
        if hidden.ndim != 5:
            raise ValueError(f"hidden_states must be (B, C, F, H, W), got shape {tuple(hidden.shape)}")
        if hidden.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"hidden_states has {hidden.shape[1]} channels, model expects {self.spec.in_channels}"
            )
        if 0 in hidden.shape:
            raise ValueError(f"hidden_states (B, C, F, H, W) is empty: got shape {tuple(hidden.shape)}")
        self._check_dtypes(hidden, hidden_states=hidden, source=source)

    def _check_source(
        self, hidden: Tensor, guidance: Tensor | None, source: Tensor | None, cache: SourceCache | None
    ) -> None:
        if (
            self.spec.prediction is Prediction.RESIDUAL
            and source is not None
            and source.shape != hidden.shape
        ):
            raise ValueError(
                f"prediction 'residual' adds its output to the source: source must be shaped like "
                f"hidden_states {tuple(hidden.shape)}, got {tuple(source.shape)}"
            )
        if cache is None:
            return
        if source is not None:
            raise ValueError("pass either source or source_cache, not both")
        if self.spec.attention is not AttentionMode.ONE_WAY:
            raise ValueError(
                f"source_cache needs attention 'one-way', this model uses '{self.spec.attention}'"
            )
        if self.spec.guidance_embeds:
            cache.check_guidance(guidance, hidden.shape[0])

    def _check_text(self, text: Tensor, mask: Tensor | None, pooled: Tensor, hidden: Tensor) -> None:
        """Shapes against the config's widths, here rather than as a matmul error deep in the refiner."""
        spec, batch = self.spec, hidden.shape[0]
        if text.ndim != 3 or text.shape[0] not in (1, batch) or text.shape[2] != spec.text_embed_dim:
            raise ValueError(
                f"encoder_hidden_states must be (B, L, {spec.text_embed_dim}) with B = {batch} (or 1), "
                f"got {tuple(text.shape)}"
            )
        if mask is not None and (
            mask.ndim != 2 or mask.shape[0] not in (1, batch) or mask.shape[1] != text.shape[1]
        ):
            raise ValueError(
                f"encoder_attention_mask must be (B, L) = ({batch}, {text.shape[1]}) to match "
                f"encoder_hidden_states, got {tuple(mask.shape)}"
            )
        if (
            pooled.ndim != 2
            or pooled.shape[0] not in (1, batch)
            or pooled.shape[1] != spec.pooled_projection_dim
        ):
            raise ValueError(
                f"pooled_projections must be (B, {spec.pooled_projection_dim}) with B = {batch} (or 1), "
                f"got {tuple(pooled.shape)}"
            )
        self._check_dtypes(hidden, encoder_hidden_states=text, pooled_projections=pooled)

    def _check_dtypes(self, hidden: Tensor, **inputs: Tensor | None) -> None:
        """Float inputs in the weights' dtype, else a layer fails on a dtype it does not name. Under autocast
        (training in bf16) the layers cast themselves."""
        weight = self.x_embedder.proj.weight
        if torch.is_autocast_enabled(hidden.device.type):
            return
        for name, tensor in inputs.items():
            if tensor is not None and tensor.dtype != weight.dtype:
                raise ValueError(
                    f"{name} is {tensor.dtype} but the model runs in {weight.dtype}; cast one of them"
                )

    def _check_guidance(self, guidance: Tensor | None) -> None:
        if self.spec.guidance_embeds and guidance is None:
            raise ValueError("this model embeds guidance (guidance_embeds=True); pass guidance=(B,) tensor")

    def extra_repr(self) -> str:
        s = self.spec
        return f"conditioning={s.conditioning}, attention={s.attention}, source_time_offset={s.source_time_offset}"
