"""Muon + AdamW: the orthogonalisation, the parameter split, and that it trains a transformer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from retake.model.presets import build_transformer
from retake.train.config import DataConfig, LoraSettings, OptimConfig, StageConfig
from retake.train.muon import MuonAdamW, is_hidden_matrix, muon_adamw, orthogonalise


@pytest.mark.parametrize("shape", [(16, 16), (8, 32), (48, 12)])
def test_orthogonalise_brings_every_singular_value_near_one(shape):
    matrix = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    matrix[:, 0] *= 20  # badly conditioned: a plain momentum step would mostly follow this one direction
    before = torch.linalg.svdvals(matrix)
    singular = torch.linalg.svdvals(orthogonalise(matrix))
    assert singular.shape[0] == min(shape)
    # five iterations do not converge exactly: the spread shrinks by a large factor, the bulk lands near 1
    assert float(singular.max() / singular.min()) < float(before.max() / before.min()) / 10
    assert float(singular.max()) < 1.3 and 0.6 < float(singular.median()) < 1.2


def test_orthogonalise_rejects_non_matrices():
    with pytest.raises(ValueError, match=r"2-D matrices, got shape \(2, 3, 4\)"):
        orthogonalise(torch.zeros(2, 3, 4))


def test_hidden_matrices_go_to_muon_and_embeddings_heads_norms_to_adamw():
    model = build_transformer("tiny", seed=0)
    optimizer = muon_adamw(model, lr=1e-3, muon_lr=0.02)
    adam, muon = ({id(p) for p in g["params"]} for g in optimizer.param_groups)
    assert [g["muon"] for g in optimizer.param_groups] == [False, True]  # the logged lr is AdamW's
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in muon} == {n for n, p in model.named_parameters() if is_hidden_matrix(n, p)}
    assert any(".attn.to_q.weight" in names[i] for i in muon)
    adam_names = {names[i] for i in adam}
    assert {"x_embedder.proj.weight", "proj_out.weight", "norm_out.linear.weight"} <= adam_names
    assert len(muon) + len(adam) == len(list(model.parameters()))


def test_a_muon_step_is_orthogonal_and_the_adamw_step_matches_torch():
    torch.manual_seed(0)
    hidden, bias = torch.nn.Parameter(torch.randn(8, 8)), torch.nn.Parameter(torch.randn(8))
    twin = torch.nn.Parameter(bias.detach().clone())
    optimizer = MuonAdamW(
        [{"params": [hidden], "lr": 0.1, "muon": True}, {"params": [bias], "lr": 1e-2, "weight_decay": 0.1}]
    )
    reference = torch.optim.AdamW([twin], lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        grad_h, grad_b = torch.randn(8, 8), torch.randn(8)
        before = hidden.detach().clone()
        hidden.grad, bias.grad, twin.grad = grad_h, grad_b, grad_b.clone()
        optimizer.step()
        reference.step()
        torch.testing.assert_close(bias, twin)
        singular = torch.linalg.svdvals((hidden.detach() - before) / 0.1)
        assert float(singular.min()) > 0.5 and float(singular.max()) < 1.3


def test_muon_fits_a_tiny_transformer_to_a_fixed_target():
    model = build_transformer("tiny", seed=0, guidance_embeds=False)
    optimizer = muon_adamw(model, lr=1e-3, muon_lr=0.02)
    x = torch.randn(1, 4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    text = torch.randn(1, 3, 16)
    kwargs = dict(
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=text,
        encoder_attention_mask=torch.ones(1, 3, dtype=torch.bool),
        pooled_projections=torch.randn(1, 8),
        source=x,
    )
    losses = []
    for _ in range(30):
        loss = ((model(hidden_states=x, **kwargs) - x.flip(-1)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_config_names_bad_optimizer_settings():
    with pytest.raises(ValueError, match=r"optimizer must be one of .*'sgd'"):
        OptimConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="muon_lr must be > 0, got 0"):
        OptimConfig(optimizer="muon", muon_lr=0)


def test_muon_with_lora_is_refused_naming_the_stage():
    with pytest.raises(ValueError, match="stage 'ft': optimizer 'muon' does not train LoRA"):
        StageConfig(
            name="ft",
            steps=1,
            data=DataConfig(cache=Path("cache")),
            optim=OptimConfig(optimizer="muon"),
            lora=LoraSettings(rank=4),
        )
