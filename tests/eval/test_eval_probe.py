"""The attribute probe: editors that read a word have a diagonal confusion table, editors deaf to it sit at
chance; what the oracle sees in an added object; word swaps; and the CLI's table and JSON."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from retake.cli import main
from retake.eval.benchmark import BenchmarkConfig, build_flatland_benchmark
from retake.eval.probe import NOTHING, ProbeEdit, ProbeResult, probe_adds, swap_word
from retake.flatland.edits import apply_edit
from retake.flatland.judge import added_objects
from retake.flatland.pairs import make_pair
from retake.flatland.palette import OBJECT_COLOURS, SHAPES
from retake.flatland.render import render
from retake.model.text import TextEmbedding
from retake.video import Video


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe") / "bench"
    return build_flatland_benchmark(
        root, BenchmarkConfig(per_kind=2, kinds=("add", "remove")), progress=False
    )


class WordEditor:
    """Renders the add sample's own scene with the shape and/or colour its instruction names (`reads`); an
    attribute it does not read keeps the sample's value."""

    def __init__(self, benchmark, reads: tuple[str, ...]) -> None:
        self.samples = {s.id: s for s in benchmark.samples}
        self.config = benchmark.config
        self.reads = reads
        self.calls: list[tuple[str, int]] = []

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        self.calls.append((instruction, seed))
        return self.draw(sample_id, instruction, instruction, source.fps)

    def draw(self, sample_id: str, shape_text: str, colour_text: str, fps: float) -> Video:
        """The sample's add with the shape named in `shape_text` and the colour named in `colour_text`."""
        sample = self.samples[sample_id]
        pair = make_pair(
            "add", size=self.config.size, frames=self.config.frames, fps=self.config.fps, seed=sample.seed
        )
        edit = sample.edit
        if "shape" in self.reads:
            edit = dataclasses.replace(edit, new_shape=next(w for w in shape_text.split() if w in SHAPES))
        if "colour" in self.reads:
            colour = next(w for w in colour_text.split() if w in OBJECT_COLOURS)
            edit = dataclasses.replace(edit, new_colour=colour)
        frames = render(apply_edit(pair.scene, edit), self.config.frames, (self.config.size,) * 2).frames
        return Video(frames, fps=fps)

    def describe(self):
        return {"type": "words", "reads": list(self.reads)}


class CharEncoder:
    """A text encoder whose tokens and pooled vector both spell the prompt (one character code per value), so
    an editor can read the prompt back from either."""

    dim, pooled_dim, length = 1, 64, 64

    def encode(self, prompts):
        codes = torch.zeros(len(prompts), self.length)
        for row, prompt in enumerate(prompts):
            codes[row, : len(prompt)] = torch.tensor([float(ord(c)) for c in prompt])
        return TextEmbedding(codes[:, :, None].clone(), codes > 0, codes.clone())


def _spelled(row: torch.Tensor) -> str:
    return "".join(chr(int(c)) for c in row.flatten() if c > 0)


class PathEditor(WordEditor):
    """A bundle-like editor (`pipeline.text_encoder`) that reads the colour from the text tokens and the shape
    from the pooled vector of its prompt's embedding."""

    def __init__(self, benchmark) -> None:
        super().__init__(benchmark, reads=("shape", "colour"))
        self.pipeline = SimpleNamespace(text_encoder=CharEncoder())
        self.negatives: list[str] = []

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        text = self.pipeline.text_encoder.encode([instruction, ""])  # with the CFG branch's empty prompt
        self.negatives.append(_spelled(text.tokens[1]) + _spelled(text.pooled[1]))
        return self.draw(sample_id, _spelled(text.pooled[0]), _spelled(text.tokens[0]), source.fps)


def test_a_word_sent_through_one_text_path_reaches_only_what_reads_that_path(bench):
    editor = PathEditor(bench)
    encoder = editor.pipeline.text_encoder
    accuracy = {
        (path, attribute): probe_adds(editor, bench, attribute, path=path, progress=False).accuracy
        for path in ("both", "tokens", "pooled")
        for attribute in ("shape", "colour")
    }
    assert accuracy[("both", "shape")] == accuracy[("both", "colour")] == 1.0
    assert accuracy[("tokens", "colour")] == accuracy[("pooled", "shape")] == 1.0  # the path it is read from
    assert accuracy[("tokens", "shape")] < 0.5 and accuracy[("pooled", "colour")] < 0.5  # the other: deaf
    result = probe_adds(editor, bench, "shape", path="tokens", progress=False)
    own = {s.id: s.edit.new_shape for s in bench.samples if s.kind == "add"}
    assert all(e.drawn == own[e.sample] for e in result.edits) and result.to_json()["path"] == "tokens"
    assert set(editor.negatives) == {""}  # the empty prompt always passed through whole
    assert editor.pipeline.text_encoder is encoder  # the pipeline's own encoder is back


def test_one_text_path_needs_an_editor_with_a_text_encoder(bench):
    with pytest.raises(ValueError, match=r"needs an editor that encodes its prompts.*WordEditor"):
        probe_adds(WordEditor(bench, reads=()), bench, path="tokens", progress=False)
    with pytest.raises(ValueError, match="path must be one of"):
        probe_adds(PathEditor(bench), bench, path="words", progress=False)


def test_an_editor_that_reads_both_words_draws_every_value_asked(bench):
    editor = WordEditor(bench, reads=("shape", "colour"))
    for attribute, values in (("shape", SHAPES), ("colour", tuple(OBJECT_COLOURS))):
        result = probe_adds(editor, bench, attribute, seed=10, progress=False)
        assert len(result.edits) + len(result.unjudgeable) == 2 * len(values) and result.skipped == ()
        assert len(result.edits) >= len(values)  # the oracle reads most swapped truths
        assert result.accuracy == 1.0 and result.chance == pytest.approx(1 / len(values))
        assert all(set(drawn) <= {asked} for asked, drawn in result.confusion().items())
    # the same seed for every value of a sample, the next seed for the next sample
    assert sorted({seed for _, seed in editor.calls}) == [10, 11]


def test_an_editor_deaf_to_the_shape_word_sits_at_chance(bench):
    result = probe_adds(WordEditor(bench, reads=("colour",)), bench, "shape", progress=False)
    own = {s.id: s.edit.new_shape for s in bench.samples if s.kind == "add"}
    assert all(e.drawn == own[e.sample] for e in result.edits)  # always the sample's own shape
    right = sum(e.asked == own[e.sample] for e in result.edits)
    assert right == 2 and result.accuracy == pytest.approx(2 / len(result.edits))  # near chance, 1 / 6
    assert probe_adds(WordEditor(bench, reads=("colour",)), bench, "colour", progress=False).accuracy == 1.0


def test_added_objects_names_the_new_object_and_nothing_that_was_there(bench):
    sample = next(s for s in bench.samples if s.kind == "add")
    source, target = sample.source().frames, sample.target().frames
    assert added_objects(source, target) == {sample.edit.new_colour: sample.edit.new_shape}
    assert added_objects(source, source) == {}
    with pytest.raises(ValueError, match="edited video has 3 frames"):
        added_objects(source, target[:3])


def test_swap_word_replaces_whole_words_only():
    assert swap_word("put a red star near the star", "star", "ring") == "put a red ring near the ring"
    assert swap_word("add a starfish", "star", "ring") is None
    assert swap_word("add a red square", "blue", "red") is None


def test_a_probe_result_s_table_and_json():
    edits = (
        ProbeEdit("a", "circle", "circle", "i"),
        ProbeEdit("a", "square", "circle", "i"),
        ProbeEdit("b", "square", NOTHING, "i"),
    )
    result = ProbeResult("shape", edits, ("c",))
    assert result.accuracy == pytest.approx(1 / 3)
    table = result.confusion()
    assert table["square"] == {"circle": 1, NOTHING: 1} and table["star"] == {}
    data = json.loads(json.dumps(result.to_json()))
    assert data["skipped"] == ["c"] and data["edits"][1] == {
        "sample": "a",
        "asked": "square",
        "drawn": "circle",
        "instruction": "i",
    }
    with pytest.raises(ValueError, match="attribute must be one of"):
        probe_adds(None, None, "size")  # type: ignore[arg-type]


def test_a_benchmark_without_adds_is_refused_by_name(bench):
    removes = dataclasses.replace(bench, samples=tuple(s for s in bench.samples if s.kind != "add"))
    with pytest.raises(ValueError, match=f"the benchmark at {bench.root} has no add samples"):
        probe_adds(WordEditor(bench, reads=()), removes, progress=False)


def test_the_cli_prints_the_table_and_writes_json(bench, tmp_path, monkeypatch, capsys):
    opened = {}
    monkeypatch.setattr(
        "retake.eval.editors.open_editor",
        lambda **kwargs: opened.update(kwargs) or WordEditor(bench, reads=("colour",)),
    )
    out = tmp_path / "probe.json"
    sampler = ["--steps", "7", "--guidance", "4.5"]
    main(
        [
            "eval",
            "probe",
            str(bench.root),
            "--model",
            str(tmp_path),
            "-o",
            str(out),
            *sampler,
            "--no-progress",
        ]
    )
    assert (opened["config"].steps, opened["config"].guidance) == (7, 4.5)
    printed = capsys.readouterr().err
    data = json.loads(out.read_text())
    right = sum(e["asked"] == e["drawn"] for e in data["edits"])
    assert data["attribute"] == "shape" and right == 2
    assert f"shape drawn as asked: 2 of {len(data['edits'])} edits" in printed
    assert "asked (rows) against drawn (columns)" in printed and "triangle" in printed
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "probe", str(bench.root), "--model", str(tmp_path), "--attribute", "size"])
    assert exit_info.value.code == 2 and "attribute must be one of" in capsys.readouterr().err


def test_the_cli_sends_the_word_through_the_path_asked(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("retake.eval.editors.open_editor", lambda **kwargs: PathEditor(bench))
    out = tmp_path / "probe.json"
    args = ["eval", "probe", str(bench.root), "--model", str(tmp_path), "--attribute", "colour"]
    main([*args, "--path", "pooled", "-o", str(out), "--no-progress"])
    data = json.loads(out.read_text())
    assert data["path"] == "pooled" and data["accuracy"] < 0.5  # the colour is read from the tokens
    assert "colour drawn as asked (the word in the pooled vector only): " in capsys.readouterr().err
