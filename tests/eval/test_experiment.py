"""The ICVE experiment's bookkeeping: arm -> weights, run tables from the TOML templates, gains and spread."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from retake.eval.experiment import (
    ARMS,
    Sizes,
    arm_weights,
    denoising_curve,
    format_gains,
    format_table,
    headline,
    heldout_loss,
    instruction_reliance,
    markdown,
    relative_gain,
    run_table,
    spread,
    summarise,
)
from retake.model.config import Prior
from retake.train.config import parse_run_config

TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "flatland"


def _template(name: str) -> dict:
    return tomllib.loads((TEMPLATES / f"{name}.toml").read_text())


def test_arms_get_the_steps_the_design_says():
    sizes = Sizes(pretrain_steps=600, sft_steps=300)
    assert sizes.arm_steps() == {"A": 300, "B": 900, "C": 600, "A'": 900}
    with pytest.raises(ValueError, match="sft_steps must be >= 1, got 0"):
        Sizes(10, 0)


def test_run_tables_fill_in_steps_seed_caches_and_parse(tmp_path):
    sizes = Sizes(pretrain_steps=7, sft_steps=3, batch=2)
    caches = {"pretrain": tmp_path / "pre", "sft": tmp_path / "sft"}
    configs = {
        run: parse_run_config(
            run_table(_template(run), out=tmp_path / run, seed=5, sizes=sizes, caches=caches)
        )
        for run in ("pretrain_sft", "sft_only")
    }
    both = configs["pretrain_sft"]
    assert both.seed == 5 and both.out == tmp_path / "pretrain_sft"
    assert [(s.name, s.steps, s.batch, s.data.cache, s.init) for s in both.stages] == [
        ("pretrain", 7, 2, (tmp_path / "pre",), "fresh"),
        ("sft", 3, 2, (tmp_path / "sft",), "previous"),
    ]
    sft = configs["sft_only"]
    assert [(s.name, s.steps, s.data.cache) for s in sft.stages] == [
        ("sft", 3, (tmp_path / "sft",)),
        ("sft_more", 7, (tmp_path / "sft",)),
    ]
    # A' (S + P steps) and B (P + S) train for the same number of steps; B's SFT stage equals A's
    assert sum(s.steps for s in sft.stages) == sum(s.steps for s in both.stages)
    assert both.stages[1].tricks == sft.stages[0].tricks and both.stages[1].optim == sft.stages[0].optim
    # every stage trains on times shifted towards pure noise, where an editor sampled from noise starts
    assert {s.tricks.t_shift for c in configs.values() for s in c.stages} == {3.0}
    assert _template("pretrain_sft")["stages"][0]["steps"] == 700  # the template itself is left alone


def test_run_table_rejects_unknown_stages_and_missing_caches(tmp_path):
    table = {"stages": [{"name": "warmup", "data": {"cache": "x"}}]}
    with pytest.raises(ValueError, match="stage 'warmup'"):
        run_table(table, out=tmp_path, seed=0, sizes=Sizes(1, 1), caches={"sft": tmp_path})
    with pytest.raises(ValueError, match="reads cache 'pretrain'"):
        run_table(
            _template("pretrain_sft"), out=tmp_path, seed=0, sizes=Sizes(1, 1), caches={"sft": tmp_path}
        )


def test_arm_weights_point_into_the_right_run_and_stage(tmp_path):
    runs = {"pretrain_sft": tmp_path / "ps", "sft_only": tmp_path / "so"}
    assert arm_weights(runs, "C") == tmp_path / "ps/stages/pretrain/transformer"
    assert arm_weights(runs, "B", ema=True) == tmp_path / "ps/stages/sft/transformer-ema"
    assert arm_weights(runs, "A'") == tmp_path / "so/stages/sft_more/transformer"
    with pytest.raises(ValueError, match="unknown arm 'D'"):
        arm_weights(runs, "D")


def test_relative_gain_and_spread():
    assert relative_gain(12.0, 10.0) == pytest.approx(0.2)
    assert relative_gain(-1.0, -2.0) == pytest.approx(0.5)  # |base|: less negative is a gain
    assert relative_gain(0.3, 0.0) is None and relative_gain(None, 1.0) is None
    s = spread([1.0, None, 3.0])
    assert (s.mean, s.low, s.high, s.n) == (2.0, 1.0, 3.0, 2) and s.std == pytest.approx(math.sqrt(2))
    assert spread([4.0]).std == 0.0 and spread([None]).mean is None


def _summary(rate: float, psnr: float, ssim: float) -> dict:
    return {
        "overall": {"success": {"rate": rate}, "metrics": {"psnr": {"mean": psnr}, "ssim": {"mean": ssim}}}
    }


def test_summarise_gives_b_gains_per_seed_then_spread():
    per_seed = {
        "A": {0: headline(_summary(0.25, 20.0, 0.5)), 1: headline(_summary(0.50, 20.0, 0.5))},
        "B": {0: headline(_summary(0.50, 22.0, 0.6)), 1: headline(_summary(0.50, 24.0, 0.5))},
        "A'": {0: headline(_summary(0.0, 25.0, 0.5)), 1: headline(_summary(0.0, 25.0, 0.5))},
    }
    summary = summarise(per_seed)
    assert summary["arms"]["B"]["psnr"]["mean"] == pytest.approx(23.0)
    gains = summary["gains"]["B_vs_A"]
    assert gains["psnr"]["mean"] == pytest.approx((0.1 + 0.2) / 2)  # per-seed relative gains, averaged
    assert gains["success"]["mean"] == pytest.approx(0.5) and gains["success"]["n"] == 2  # +100%, then 0%
    assert gains["success_points"]["mean"] == pytest.approx(12.5)
    assert summary["gains"]["B_vs_A'"]["success"]["n"] == 0  # A' never succeeds: no relative gain
    rows = format_table(summary, Sizes(10, 5))
    assert rows[2][:5] == ["B", "pretrain then SFT", "15", "2", "50.0 ± 0.0"] and rows[2][7] == "n/a"
    gain_rows = format_gains(summary)
    assert gain_rows[1][0] == "B vs A" and gain_rows[1][1].startswith("+12.5") and gain_rows[2][2] == "n/a"
    assert markdown(rows).splitlines()[1] == "|---|---|---|---|---|---|---|---|"
    assert set(ARMS) == {"A", "B", "C", "A'"}


class _Oracle(torch.nn.Module):
    """Knows the clean target, so it can give the exact velocity (x_t - x0) / t; or returns zeros."""

    def __init__(self, target: torch.Tensor, exact: bool, prior: str = "noise") -> None:
        super().__init__()
        self.target, self.exact = target, exact
        self.spec = SimpleNamespace(prior=Prior(prior))

    def forward(self, hidden_states, timestep, source, **_):
        t = timestep.view(-1, 1, 1, 1, 1) / 1000
        return (hidden_states - self.target) / t if self.exact else torch.zeros_like(hidden_states)


class _OneSample:
    def __init__(self, target: torch.Tensor) -> None:
        from retake.model.text import TextEmbedding
        from retake.train.encode import LatentSample

        text = TextEmbedding(torch.zeros(1, 3, 8), torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 8))
        self.sample = LatentSample("s0", target * 0.5, target, text)

    def __len__(self) -> int:
        return 1

    def get(self, index: int):
        return self.sample


class _Copier(torch.nn.Module):
    """Predicts the velocity whose one-step clean estimate is the source: x0 = x_t - t * v = source."""

    spec = SimpleNamespace(prior=Prior.NOISE)

    def forward(self, hidden_states, timestep, source, **_):
        t = timestep.view(-1, 1, 1, 1, 1) / 1000
        return (hidden_states - source) / t


def test_denoising_curve_measures_the_clean_estimate_at_every_noise_level():
    target = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(5))[0]
    cache = _OneSample(target)  # its source is target * 0.5
    exact = denoising_curve(_Oracle(target, exact=True), cache)
    assert list(exact.x0_error) == [1.0, 0.97, 0.9, 0.7, 0.5, 0.3, 0.1]  # starts at pure noise
    assert max(exact.x0_error.values()) < 1e-10
    copy_source = float(((0.5 * target) ** 2).mean())
    assert exact.copy_source == pytest.approx(copy_source)
    copier = denoising_curve(_Copier(), cache, t_values=(1.0, 0.5))
    assert copier.x0_error == pytest.approx({1.0: copy_source, 0.5: copy_source})
    assert copier.row() == {
        "t=1": round(copy_source, 4),
        "t=0.5": round(copy_source, 4),
        "copy": round(copy_source, 4),
    }


def test_heldout_loss_is_zero_for_the_exact_velocity_and_seeded():
    target = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(123))[0]
    cache = _OneSample(target)
    assert heldout_loss(_Oracle(target, exact=True), cache) == pytest.approx(0.0, abs=1e-10)
    zero = heldout_loss(_Oracle(target, exact=False), cache)
    # zeros: E[(noise - x0)^2] = 1 + mean(x0^2), up to the noise drawn (5 draws of 128 values)
    assert zero == pytest.approx(1 + float((target**2).mean()), rel=0.2)
    assert heldout_loss(_Oracle(target, exact=False), cache) == zero  # same noise every time
    assert heldout_loss(_Oracle(target, exact=False), cache, seed=1) != zero
    # the source prior's path starts at source + noise: the exact velocity still scores zero, and zeros now
    # miss by E[(source + noise - x0)^2] = 1 + mean((source - x0)^2), the source being target * 0.5
    assert heldout_loss(_Oracle(target, exact=True, prior="source"), cache) == pytest.approx(0.0, abs=1e-10)
    anchored = heldout_loss(_Oracle(target, exact=False, prior="source"), cache)
    assert anchored == pytest.approx(1 + float(((0.5 * target) ** 2).mean()), rel=0.2)
    assert anchored < zero


class _CodedCache:
    """Two samples whose targets are source + (i + 1) * delta on the positions delta marks; sample i's prompt
    holds the number i + 1 and the empty prompt 0, so a model can read how much to add."""

    def __init__(self) -> None:
        from retake.model.text import TextEmbedding
        from retake.train.encode import LatentSample

        g = torch.Generator().manual_seed(3)
        self.delta = torch.zeros(4, 2, 4, 4)
        self.delta[:, :, :2, :2] = 1.0  # a quarter of the positions change

        def text(code: float) -> TextEmbedding:
            return TextEmbedding(
                torch.full((1, 3, 8), code), torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 8)
            )

        self.samples = []
        for i in range(2):
            source = torch.randn(4, 2, 4, 4, generator=g)
            self.samples.append(LatentSample(f"s{i}", source, source + (i + 1) * self.delta, text(i + 1.0)))
        self.empty = text(0.0)

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int):
        return self.samples[index]

    def empty_text(self):
        return self.empty


class _Reader(torch.nn.Module):
    """Adds the prompt's number times delta to the source: it follows whatever it is told."""

    spec = SimpleNamespace(prior=Prior.NOISE)

    def __init__(self, delta: torch.Tensor) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, hidden_states, timestep, source, encoder_hidden_states, **_):
        t = timestep.view(-1, 1, 1, 1, 1) / 1000
        x0 = source + encoder_hidden_states[0, 0, 0] * self.delta
        return (hidden_states - x0) / t


def test_instruction_reliance_tells_a_model_that_reads_its_prompt_from_one_that_does_not():
    cache = _CodedCache()
    reader = instruction_reliance(_Reader(cache.delta), cache, t=0.9)
    # own prompt: exact; the other sample's differs by one delta; the empty prompt copies the source
    assert reader.own < 1e-10 and reader.other == pytest.approx(1.0)
    assert reader.empty == pytest.approx(reader.copy_source) and reader.copy_source == pytest.approx(2.5)
    assert reader.samples == 2 and reader.row()["t"] == 0.9
    blind = instruction_reliance(_Copier(), cache)
    assert blind.own == pytest.approx(blind.other) == pytest.approx(blind.empty) == pytest.approx(2.5)


def test_instruction_reliance_rejects_what_it_cannot_measure():
    cache = _CodedCache()
    with pytest.raises(ValueError, match="t must be in"):
        instruction_reliance(_Copier(), cache, t=0.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        instruction_reliance(_Copier(), _OneSample(torch.zeros(4, 2, 4, 4)))
    with pytest.raises(ValueError, match="by more than 5"):
        instruction_reliance(_Copier(), cache, changed=5.0)
    with pytest.raises(ValueError, match="max_share must be in"):
        instruction_reliance(_Copier(), cache, max_share=0.0)


def test_instruction_reliance_can_keep_only_local_edits():
    cache = _CodedCache()  # both edits change a quarter of the positions
    assert instruction_reliance(_Copier(), cache, max_share=0.25).samples == 2
    cache.samples[1].target[:] += 1.0  # the second becomes a whole-frame edit
    assert instruction_reliance(_Copier(), cache, max_share=0.5).samples == 1
    with pytest.raises(ValueError, match="on at most 10%"):
        instruction_reliance(_Copier(), cache, max_share=0.1)
