"""What a notebook user passes that the CLI never does: `~` paths, numpy numbers, sizes in other shapes, None
as a task, one kind as a string."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retake.data.executors import LocalExecutor
from retake.data.recipes import CurateConfig
from retake.files import write_json
from retake.flatland.footage import footage_video
from retake.flatland.pairs import load_pair, make_pairs
from retake.flatland.render import as_size
from retake.flatland.truth import FootageTruth
from retake.synth.recipes import InsVieConfig, config_from_dict


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder of the test's own, and a working folder apart from it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "home"


def test_flatland_writers_and_readers_expand_the_home_folder(home, tmp_path):
    make_pairs("~/pairs", n=1, size=16, frames=2, progress=False)
    assert (home / "pairs/manifest.jsonl").is_file()
    assert not (tmp_path / "work/~").exists()  # never a folder named '~' where the user stands
    assert load_pair("~/pairs/pair_00000.json").source.shape == (2, 16, 16, 3)
    _, truth = footage_video(1, 16, 4, seed=1)
    truth.save("~/truth.json")
    assert FootageTruth.load("~/truth.json").cuts == truth.cuts and (home / "truth.json").is_file()


def test_numpy_numbers_in_configs_become_python_numbers_that_json_writes(tmp_path):
    config = CurateConfig(seed=np.int64(1), min_fps=np.float32(8), clip_frames=np.int32(17))
    assert (type(config.seed), type(config.min_fps), type(config.clip_frames)) == (int, float, int)
    assert config == CurateConfig(seed=1, min_fps=8.0, clip_frames=17)  # and the same run as the plain one
    assert json.loads(config.to_json())["seed"] == 1
    assert type(InsVieConfig(seed=np.int64(3)).seed) is int
    write_json(tmp_path / "x.json", {"seed": np.int64(3), "lr": np.float32(0.5), "ok": np.bool_(True)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"seed": 3, "lr": 0.5, "ok": True}
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        write_json(tmp_path / "y.json", {"what": object()})


def test_footage_and_pairs_take_numpy_counts_and_seeds(tmp_path):
    make_pairs(
        tmp_path / "pairs", n=np.int64(2), seed=np.int64(5), size=np.int64(16), frames=2, progress=False
    )
    make_pairs(tmp_path / "same", n=2, seed=5, size=16, frames=2, progress=False)
    assert (tmp_path / "pairs/manifest.jsonl").read_text() == (tmp_path / "same/manifest.jsonl").read_text()
    _, truth = footage_video(1, 16, 4, seed=np.int64(1))
    assert FootageTruth.load(truth.save(tmp_path / "t.json")).seed == 1


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (16.0, "got 16.0"),
        ((16,), r"got \(16,\)"),
        ((16, 24, 3), r"got \(16, 24, 3\)"),  # a third item was dropped without a word
        ((16.7, 24.9), "size height must be an integer, got 16.7"),  # was truncated to 16x24
    ],
)
def test_flatland_sizes_other_than_n_or_h_w_are_named(size, message):
    with pytest.raises(ValueError, match=message):
        as_size(size)


def test_flatland_sizes_take_numpy_ints_and_arrays():
    assert as_size(np.int64(16)) == (16, 16) and as_size(np.array([16, 24])) == (16, 24)


def test_a_task_that_is_none_is_run_like_any_other():
    tasks = [1, 2, 3, 4, None, 5, 6, 7, 8]  # more than the first window of 2 x workers
    assert sorted(LocalExecutor(2).map(str, tasks)) == sorted(str(t) for t in tasks)


def test_one_kind_as_a_string_or_no_kinds_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"kinds must be a list of edit kinds, got the string 'remove'"):
        make_pairs(tmp_path / "a", n=1, kinds="remove", size=16, frames=2, progress=False)
    with pytest.raises(ValueError, match="at least one edit kind"):
        make_pairs(tmp_path / "b", n=1, kinds=[], size=16, frames=2, progress=False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_fsp": 3}, "unknown CurateConfig fields: min_fsp; known: min_duration_s"),
        ({"vlm": {"modle": "x"}}, "unknown VLMConfig fields: vlm.modle; known: base_url"),
        ({"vlm": None}, "vlm needs a table of VLMConfig settings, got None"),
    ],
)
def test_curate_configs_from_data_name_unknown_fields_and_bad_tables(data, message):
    with pytest.raises(ValueError, match=message):
        CurateConfig.from_dict(data)


def test_configs_read_back_from_their_dicts_and_synth_tables_are_checked():
    config = CurateConfig(min_fps=4.0).with_settings({"vlm.model": "m"})
    assert CurateConfig.from_dict(config.to_dict()) == config and config.vlm.model == "m"
    with pytest.raises(ValueError, match="source needs a table of SourceConfig settings, got None"):
        config_from_dict({"recipe": "insvie", "source": None})


def test_recipe_seeds_are_checked_like_every_other_seed():
    for bad in (-1, 2**40):
        with pytest.raises(ValueError, match=rf"seed must be in 0..4294967295, got {bad}"):
            CurateConfig(seed=bad)
        with pytest.raises(ValueError, match="seed must be in"):
            InsVieConfig(seed=bad)


def test_a_file_where_an_output_folder_goes_is_named(tmp_path):
    from retake.data.runner import curate
    from retake.video import Video, write

    write(Video(np.zeros((4, 16, 16, 3), np.uint8), 8.0), tmp_path / "in" / "clip.mp4")
    taken = tmp_path / "taken"
    taken.write_text("mine")
    with pytest.raises(FileExistsError, match="taken is a file, not a folder for the dataset"):
        curate(tmp_path / "in", taken, CurateConfig(), progress=False)
    assert taken.read_text() == "mine"


def test_a_generator_of_tasks_is_run_like_a_list():
    assert sorted(LocalExecutor(2).map(str, (i for i in range(5)))) == ["0", "1", "2", "3", "4"]


def test_a_seed_is_taken_where_a_generator_is_expected():
    from retake.flatland.edits import sample_edit
    from retake.flatland.generate import random_scene

    scene = random_scene(np.random.default_rng(0), fps=8.0)
    assert sample_edit(3, scene, "recolour") == sample_edit(np.random.default_rng(3), scene, "recolour")
    with pytest.raises(ValueError, match="rng must be in"):
        sample_edit(-1, scene, "recolour")
