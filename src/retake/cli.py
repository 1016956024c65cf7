"""The `retake` command. Parses arguments, builds configs and calls library functions; nothing below this
module sees typer or argparse objects.

Each subcommand group lives in its own section below. Errors a user can cause (RetakeError, ValueError,
OSError: a missing file, a full disk) are printed as one red line with exit code 2; `retake --debug ...`
shows the traceback.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from retake import files
from retake.errors import RetakeError

if TYPE_CHECKING:
    from rich.table import Table

    from retake.eval.probe import ProbeResult
    from retake.train.loop import StageStart

app = typer.Typer(
    name="retake",
    help="Instruction-based video editing: build data, train, edit, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)  # soft wrap: an error stays one line
_state = {"debug": False}


# Every command that samples names the guidance scales alike (as `EditPipeline.edit` does); the short CFG
# names are kept as aliases because `retake edit` shipped with them.
def _guidance_option() -> Any:
    return typer.Option(None, "--guidance", "--cfg", help="Text CFG scale (default: the bundle's).")


def _video_guidance_option() -> Any:
    return typer.Option(
        None,
        "--video-guidance",
        "--video-cfg",
        help="Video guidance scale: InsViE's 3-way guidance (default: the bundle's).",
    )


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


# ----------------------------------------------------------------------------------------------------------
# flatland
# ----------------------------------------------------------------------------------------------------------
flatland_app = typer.Typer(
    help="The synthetic Flatland world: raw footage and paired edits.", no_args_is_help=True
)
app.add_typer(flatland_app, name="flatland")


@flatland_app.command("footage")
def flatland_footage(
    out: Path = typer.Argument(
        ...,
        help="Output folder for footage_0000.mp4 + footage_0000.json, ...; a stopped run there is resumed.",
    ),
    videos: int = typer.Option(4, help="Number of videos."),
    seconds: float = typer.Option(30.0, help="Length of each video in seconds."),
    size: str = typer.Option("64", help="Frame size: N (square) or HxW, e.g. 48x96."),
    fps: float = typer.Option(24.0, help="Frame rate."),
    seed: int = typer.Option(0, help="Seed; the same seed gives byte-identical files."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    overwrite: bool = typer.Option(
        False, help="Replace footage OUT holds that was made with other settings (same settings: resumed)."
    ),
) -> None:
    """Raw footage: scenes joined by hard cuts, objects that enter, leave, stop and change colour."""
    from retake.flatland import make_footage
    from retake.flatland.footage import footage_frames
    from retake.sample.grid import parse_size

    paths = make_footage(
        _path_arg(out),
        videos=videos,
        seconds=seconds,
        size=parse_size(size),
        fps=fps,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    frames = footage_frames(seconds, fps)
    if abs(frames / fps - seconds) > 1e-9:
        length = f"{frames / fps:.3f}".rstrip("0").rstrip(".")  # 0.667, 1000, never 1e+03
        console.print(
            f"note: each video is {frames} frame{'s' * (frames != 1)} at {fps:g} fps ({length} s): "
            f"--seconds {seconds:g} rounded to whole frames"
        )
    console.print(f"wrote {len(paths)} video{'s' * (len(paths) != 1)} with ground-truth sidecars to {out}")


# Options the Flatland clip makers share.
_CLIP_SIZE = typer.Option("64", help="Frame size: N (square) or HxW, e.g. 48x96.")
_CLIP_FRAMES = typer.Option(17, help="Frames per clip.")
_CLIP_FPS = typer.Option(8.0, help="Frame rate.")
_EDIT_KINDS = typer.Option("", help="Comma-separated edit kinds (default: all, balanced).")
_FLATLAND_SEED = typer.Option(0, help="Seed; the same seed gives byte-identical files.")


def _kinds_list(kinds: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in kinds.split(",") if k.strip())


@flatland_app.command("pairs")
def flatland_pairs(
    out: Path = typer.Argument(
        ..., help="Output folder for the pairs and manifest.jsonl; a stopped run there is resumed."
    ),
    n: int = typer.Option(100, "--n", help="Number of pairs."),
    size: str = _CLIP_SIZE,
    frames: int = _CLIP_FRAMES,
    fps: float = _CLIP_FPS,
    kinds: str = _EDIT_KINDS,
    seed: int = _FLATLAND_SEED,
    progress: bool = typer.Option(True, help="Show a progress bar."),
    overwrite: bool = typer.Option(
        False, help="Replace pairs OUT holds that were made with other settings (same settings: resumed)."
    ),
) -> None:
    """Paired edits (source, target, masks, instruction): add, remove, replace, recolour, background, style."""
    from retake.flatland import make_pairs
    from retake.sample.grid import parse_size

    manifest = make_pairs(
        _path_arg(out),
        n=n,
        size=parse_size(size),
        frames=frames,
        fps=fps,
        kinds=_kinds_list(kinds) or None,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    console.print(f"wrote {n} pairs to {out} (manifest: {manifest.name})")


@flatland_app.command("sources")
def flatland_sources(
    out: Path = typer.Argument(..., help="Output folder; a stopped run there is resumed."),
    n: int = typer.Option(100, "--n", help="Number of source videos."),
    size: str = _CLIP_SIZE,
    frames: int = _CLIP_FRAMES,
    fps: float = _CLIP_FPS,
    kinds: str = _EDIT_KINDS,
    seed: int = _FLATLAND_SEED,
    progress: bool = typer.Option(True, help="Show a progress bar."),
    overwrite: bool = typer.Option(
        False, help="Replace sources OUT holds that were made with other settings (same settings: resumed)."
    ),
) -> None:
    """Source videos for `retake synth` with the Flatland oracles (--editor/--propagator/--masks/--inpainter
    flatland): each with a sidecar holding its scene and one edit to make."""
    from retake.flatland.edits import EDIT_KINDS
    from retake.sample.grid import parse_size
    from retake.synth.flatland import write_sources

    paths = write_sources(
        _path_arg(out),
        n=n,
        kinds=_kinds_list(kinds) or EDIT_KINDS,
        size=parse_size(size),
        frames=frames,
        fps=fps,
        seed=seed,
        progress=progress,
        overwrite=overwrite,
    )
    console.print(f"wrote {len(paths)} Flatland sources with sidecars to {out}")


# ----------------------------------------------------------------------------------------------------------
# convert
# ----------------------------------------------------------------------------------------------------------
convert_app = typer.Typer(help="Import checkpoints from other layouts.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@convert_app.command("icve")
def convert_icve(
    src: Path = typer.Argument(..., help="Original-layout HunyuanVideo/ICVE transformer .safetensors."),
    out_dir: Path = typer.Argument(..., help="Output directory (config.json + safetensors)."),
    preset: str = typer.Option(
        "hunyuan-13b", help="Preset giving RoPE and conditioning; sizes come from SRC."
    ),
    attention: str | None = typer.Option(None, help="Override the attention mode: full or one-way."),
    load_key: str = typer.Option(
        "module", help="Which wrapper to read when SRC holds both module.* and ema.*."
    ),
    shard_gb: float = typer.Option(5.0, help="Largest output shard, in GiB."),
    overwrite: bool = typer.Option(False, help="Replace OUT_DIR if it is not empty."),
) -> None:
    """Convert an ICVE (or HunyuanVideo T2V) checkpoint into a retake model directory."""
    from retake.model.convert import convert_icve_checkpoint

    spec = convert_icve_checkpoint(
        _path_arg(src),
        _path_arg(out_dir),
        base=preset,
        attention=attention,
        load_key=load_key,
        max_shard_bytes=int(shard_gb * 1024**3),
        overwrite=overwrite,
    )
    console.print(
        f"wrote {out_dir}: {spec.num_layers} dual + {spec.num_single_layers} single blocks, "
        f"hidden {spec.inner_dim}, attention {spec.attention}"
    )


SET_HELP = (
    "Change a recipe setting, e.g. --set {example}; repeatable. Values are read as TOML (32, 0.5, true, "
    "[5, 7.5]; null for none); unknown keys are refused naming the known ones."
)


def _settings(assignments: list[str] | None, current: dict[str, Any]) -> dict[str, Any]:
    from retake.overrides import parse_assignments

    return parse_assignments(assignments or [], current)


def _note_all_dropped(made: int, stats: dict[str, Any], settings: dict[str, Any]) -> None:
    """A run whose every input a filter dropped exits 0 (the table says why), but says so plainly."""
    from retake.data.summary import all_dropped_note

    note = all_dropped_note(made, stats, settings)
    if note:
        console.print(f"[yellow]note: {note}[/yellow]")


# ----------------------------------------------------------------------------------------------------------
# curate
# ----------------------------------------------------------------------------------------------------------
@app.command("curate")
def curate_command(
    input_path: Path = typer.Argument(..., help="A folder of videos, a .txt list of paths, or a video."),
    out: Path = typer.Argument(..., help="Dataset folder; a stopped run there is resumed."),
    recipe: str = typer.Option("icve-pretrain", help="Named CurateConfig (retake.data.recipes)."),
    executor: str = typer.Option("local", help="local (process pool) or ray."),
    writer: str | None = typer.Option(None, help="Instruction writer: none, flatland or vlm."),
    workers: int | None = typer.Option(None, help="Parallel workers (default: the CPUs of this machine)."),
    address: str | None = typer.Option(None, help="Ray cluster to join (default: a local Ray)."),
    shard_size: int | None = typer.Option(None, help="Input videos per shard (default: recipe's)."),
    seed: int | None = typer.Option(None, help="Global seed (default: recipe's)."),
    vlm_base_url: str | None = typer.Option(None, help="OpenAI-compatible URL ($RETAKE_VLM_BASE_URL)."),
    vlm_model: str | None = typer.Option(None, help="VLM model name (or $RETAKE_VLM_MODEL)."),
    vlm_key_env: str | None = typer.Option(None, help="Environment variable holding the VLM API key."),
    settings: list[str] | None = typer.Option(
        None, "--set", help=SET_HELP.format(example="min_short_side=32")
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Curate unpaired-clip training pairs (ICVE pretraining data) from raw videos."""
    from dataclasses import replace

    from retake.data.recipes import get_recipe
    from retake.data.runner import curate
    from retake.data.summary import check_something_made, headline, stats_table

    config = get_recipe(recipe)
    overrides = {"writer": writer, "shard_size": shard_size, "seed": seed}
    config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
    vlm = {"base_url": vlm_base_url, "model": vlm_model, "api_key_env": vlm_key_env}
    config = config.replace(vlm=replace(config.vlm, **{k: v for k, v in vlm.items() if v is not None}))
    config = config.with_settings(_settings(settings, config.to_dict()))
    options = {"executor": executor, "workers": workers, "address": address, "progress": progress}
    result = curate(_path_arg(input_path), _path_arg(out), config, **options)
    console.print(headline(result.stats, result.seconds))
    console.print(stats_table(result.stats))
    console.print(f"wrote {result.manifest} ({result.shards} shards, {result.shards_skipped} already done)")
    made = result.stats.get("pairs_ok", 0)
    check_something_made(made, result.stats, result.manifest)
    _note_all_dropped(made, result.stats, config.to_dict())


# ----------------------------------------------------------------------------------------------------------
# synth
# ----------------------------------------------------------------------------------------------------------
@app.command("synth")
def synth_command(
    input_path: Path = typer.Argument(
        ..., help="A folder of videos and images, a .txt list of paths, or a file."
    ),
    out: Path = typer.Argument(..., help="Dataset folder; a stopped run there is resumed."),
    recipe: str = typer.Option(
        "insvie", help="insvie (first-frame edit + propagation) or icve-sft (inpainting)."
    ),
    editor: str | None = typer.Option(None, help="insvie: image editor: precomputed, diffusers or flatland."),
    edits: Path | None = typer.Option(
        None, help="insvie: edited-frames folder or diffusers pipeline directory."
    ),
    strengths: str | None = typer.Option(
        None, help="insvie: comma-separated guidance strengths, e.g. 5,7.5,10."
    ),
    instruction: list[str] | None = typer.Option(
        None, help="insvie: instruction for inputs without their own."
    ),
    selection: str | None = typer.Option(None, help="insvie: vlm, flatland or none."),
    propagator: str | None = typer.Option(None, help="insvie: flow, model, diffusers or flatland."),
    propagator_path: Path | None = typer.Option(
        None, help="insvie: bundle or image-to-video pipeline directory."
    ),
    masks: str | None = typer.Option(None, help="icve-sft: mask source: files or flatland."),
    masks_dir: Path | None = typer.Option(None, help="icve-sft: folder of <input>/<label>.png|.mp4 masks."),
    inpainter: str | None = typer.Option(None, help="icve-sft: opencv, wan-vace or flatland."),
    inpainter_path: Path | None = typer.Option(None, help="icve-sft: WanVACE pipeline directory."),
    types: str | None = typer.Option(None, help="icve-sft: comma-separated pair types (remove,add,replace)."),
    frames: int | None = typer.Option(
        None,
        help="Frames per clip, 4k+1, at most (default: recipe's); a shorter video gives the largest 4k+1 it has.",
    ),
    short_side: int | None = typer.Option(None, help="Output short side in pixels (default: recipe's)."),
    device: str | None = typer.Option(None, help="torch device of the models (cpu, cuda:0 ...)."),
    executor: str = typer.Option("local", help="local (process pool) or ray."),
    workers: int | None = typer.Option(None, help="Parallel workers (default: the CPUs of this machine)."),
    address: str | None = typer.Option(None, help="Ray cluster to join (default: a local Ray)."),
    shard_size: int | None = typer.Option(None, help="Inputs per shard (default: recipe's)."),
    seed: int | None = typer.Option(None, help="Global seed (default: recipe's)."),
    vlm_base_url: str | None = typer.Option(None, help="OpenAI-compatible URL ($RETAKE_VLM_BASE_URL)."),
    vlm_model: str | None = typer.Option(None, help="VLM model name (or $RETAKE_VLM_MODEL)."),
    vlm_key_env: str | None = typer.Option(None, help="Environment variable holding the VLM API key."),
    settings: list[str] | None = typer.Option(
        None, "--set", help=SET_HELP.format(example="source.min_short_side=32")
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Make paired (source, edited, instruction) training triplets: InsViE's pipeline or ICVE's SFT pairs."""
    from retake.data.summary import check_something_made, stats_table
    from retake.synth.recipes import fit_default_types, get_recipe, with_overrides, with_settings
    from retake.synth.runner import synthesize
    from retake.synth.stats import headline

    names = [t.strip() for t in types.split(",")] if types else None
    changes = {
        "editor.name": editor,
        "editor.path": edits and str(_path_arg(edits)),
        "editor.strengths": list(_float_list(strengths, "strengths")) if strengths else None,
        "editor.instructions": instruction or None,
        "selection.name": selection,
        "propagation.name": propagator,
        "propagation.path": propagator_path and str(_path_arg(propagator_path)),
        "masks.name": masks,
        "masks.path": masks_dir and str(_path_arg(masks_dir)),
        "inpaint.name": inpainter,
        "inpaint.path": inpainter_path and str(_path_arg(inpainter_path)),
        "pairs.types": names,
        "pairs.proportions": [1.0] * len(names) if names else None,
        "source.clip_frames": frames,
        "source.short_side": short_side,
        "shard_size": shard_size,
        "seed": seed,
        "vlm.base_url": vlm_base_url,
        "vlm.model": vlm_model,
        "vlm.api_key_env": vlm_key_env,
    }
    config = get_recipe(recipe)
    models = ("editor", "propagation") if recipe == "insvie" else ("inpaint",)
    changes.update({f"{part}.device": device for part in models})
    config = with_overrides(config, {k: v for k, v in changes.items() if v is not None})
    assigned = _settings(settings, config.to_dict())
    config = with_settings(config, assigned)
    fitted = None
    if names is None and "pairs.types" not in assigned:  # only the recipe's default mix is fitted
        config, fitted = fit_default_types(config)
    options = {"executor": executor, "workers": workers, "address": address, "progress": progress}
    result = synthesize(_path_arg(input_path), _path_arg(out), config, **options)
    if fitted:  # after the run, so that a refused one still says one line
        console.print(f"note: {fitted}")
    console.print(headline(result.stats, result.seconds))
    console.print(stats_table(result.stats))
    console.print(f"wrote {result.manifest} ({result.shards} shards, {result.shards_skipped} already done)")
    made = result.stats.get("triplets_ok", 0)
    check_something_made(made, result.stats, result.manifest)
    _note_all_dropped(made, result.stats, config.to_dict())


# ----------------------------------------------------------------------------------------------------------
# eval
# ----------------------------------------------------------------------------------------------------------
eval_app = typer.Typer(
    help="Benchmarks and reports: score any editor on Flatland, or on your own videos.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")


@eval_app.command("flatland-set")
def eval_flatland_set(
    out: Path = typer.Argument(
        ..., help="New (empty) benchmark folder, or an interrupted build to continue."
    ),
    per_kind: int = typer.Option(20, help="Samples per edit kind."),
    kinds: str | None = typer.Option(None, help="Comma-separated edit kinds (default: all)."),
    size: str = typer.Option("64", help="Picture size: N (square) or HxW, e.g. 48x80."),
    frames: int = typer.Option(17, help="Frames per video."),
    fps: float = typer.Option(8.0, help="Frame rate."),
    seed: int = typer.Option(0, help="Benchmark seed."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Render a Flatland benchmark: source videos + instructions to hand out, ground truth kept for scoring."""
    from retake.eval.benchmark import BenchmarkConfig, build_flatland_benchmark
    from retake.sample.grid import parse_size

    options = {"per_kind": per_kind, "size": parse_size(size), "frames": frames, "fps": fps, "seed": seed}
    if kinds:
        options["kinds"] = tuple(k.strip() for k in kinds.split(","))
    bench = build_flatland_benchmark(_path_arg(out), BenchmarkConfig(**options), progress=progress)
    console.print(f"wrote {len(bench.samples)} samples to {out} (fingerprint {bench.fingerprint})")


@eval_app.command("run")
def eval_run(
    bench: Path = typer.Argument(..., help="Benchmark folder (retake eval flatland-set)."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder; a stopped run there is resumed."),
    model: Path | None = typer.Option(None, "--model", help="A retake pipeline bundle to evaluate."),
    videos: Path | None = typer.Option(None, "--videos", help="Or: a folder of <id>.mp4 made elsewhere."),
    steps: int | None = typer.Option(None, help="Sampling steps (default: the bundle's)."),
    guidance: float | None = _guidance_option(),
    video_guidance: float | None = _video_guidance_option(),
    device: str = typer.Option("cpu", help="Device of the bundle's model."),
    dtype: str | None = typer.Option(None, help="The model's dtype: float32 (default), bfloat16 or float16."),
    seeds: list[int] = typer.Option(
        [0],
        "--seed",
        help="Editor seed of the first sample (then +1 per sample). Repeat it to score each seed in "
        "OUT/seed-<s>/ and pool them in OUT/seeds.json.",
    ),
    limit: int | None = typer.Option(None, help="Score only N samples, every edit kind in turn."),
    gifs_per_kind: int = typer.Option(3, help="Example GIFs per edit kind in the report."),
    judge: bool = typer.Option(False, "--vlm-judge", help="Also score with a VLM judge (0-3 rubric)."),
    judge_url: str | None = typer.Option(None, help="Judge endpoint ($RETAKE_VLM_BASE_URL)."),
    judge_model: str | None = typer.Option(None, help="Judge model ($RETAKE_VLM_MODEL)."),
    judge_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable with the judge's key."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run an editor over a benchmark and write report.json + index.html into OUT."""
    from retake.eval.benchmark import load_benchmark
    from retake.eval.editors import BundleEditConfig, open_editor
    from retake.eval.report import ReportConfig, summary_table, write_report
    from retake.eval.runner import RunConfig, run_benchmark, run_seeds

    benchmark = load_benchmark(_path_arg(bench))
    edit_config = BundleEditConfig(
        steps=steps, guidance=guidance, video_guidance=video_guidance, device=device, dtype=dtype
    )
    editor = open_editor(
        bundle=model and _path_arg(model),
        videos=videos and _path_arg(videos),
        expected=[benchmark.ids[i] for i in benchmark.pick(limit)],
        config=edit_config,
    )
    vlm_judge = _open_judge(judge, judge_url, judge_model, judge_key_env)
    report_config = ReportConfig(gifs_per_kind=gifs_per_kind)
    if len(seeds) == 1:
        run_config = RunConfig(seed=seeds[0], limit=limit)
        result = run_benchmark(
            benchmark, editor, _path_arg(out), run_config, judge=vlm_judge, progress=progress
        )
        page = write_report(result, benchmark, config=report_config)
        console.print(summary_table(result.summary))
        console.print(f"wrote {page} and {page.with_name('report.json')}")
        if (note := result.check_errors()) is not None:  # raises when every sample errored
            console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)
        return
    pooled = run_seeds(
        benchmark, editor, _path_arg(out), seeds, RunConfig(limit=limit), judge=vlm_judge, progress=progress
    )
    for seed, result in pooled.runs.items():
        write_report(result, benchmark, config=report_config)
        overall = result.summary["overall"]
        console.print(f"seed {seed}: {overall['success']['count']} / {overall['n']} edits succeed")
    console.print(summary_table(pooled.summary))
    console.print(f"wrote a report per seed in {out}/seed-<s>/ and the pooled summary in {out}/seeds.json")
    if (note := pooled.check_errors()) is not None:  # raises when every sample errored
        console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)


@eval_app.command("ceiling")
def eval_ceiling(
    bench: Path = typer.Argument(..., help="Benchmark folder (retake eval flatland-set)."),
    vae: Path = typer.Option(..., "--vae", help="VAE folder (diffusers layout), e.g. a bundle's vae/."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder; a stopped run there is resumed."),
    device: str = typer.Option("cpu", help="Device of the VAE."),
    limit: int | None = typer.Option(None, help="Score only N samples, every edit kind in turn."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Score each sample's ground truth after a round trip through VAE: the best any editor on it can do."""
    from retake.eval.benchmark import load_benchmark
    from retake.eval.editors import AutoencoderCeiling
    from retake.eval.report import summary_table, write_report
    from retake.eval.runner import RunConfig, run_benchmark

    benchmark = load_benchmark(_path_arg(bench))
    editor = AutoencoderCeiling.from_pretrained(benchmark, _path_arg(vae), device=device)
    result = run_benchmark(benchmark, editor, _path_arg(out), RunConfig(limit=limit), progress=progress)
    page = write_report(result, benchmark)
    console.print(summary_table(result.summary))
    console.print(f"wrote {page} and {page.with_name('report.json')}")
    if (note := result.check_errors()) is not None:  # raises when every sample errored
        console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)


@eval_app.command("probe")
def eval_probe(
    bench: Path = typer.Argument(
        ..., help="Flatland benchmark folder with add samples (retake eval flatland-set)."
    ),
    model: Path = typer.Option(..., "--model", help="A retake pipeline bundle."),
    attribute: str = typer.Option("shape", help="The word to swap: shape or colour."),
    path: str = typer.Option(
        "both",
        help="Where the swapped word reaches the model: both text inputs, or the text 'tokens' or 'pooled' "
        "vector only (the other gets the sample's own instruction).",
    ),
    out: Path | None = typer.Option(None, "-o", "--out", help="Also write the edits and the table as JSON."),
    seed: int = typer.Option(0, help="Editor seed of the first add sample (then +1 per sample)."),
    steps: int | None = typer.Option(None, help="Sampling steps (default: the bundle's)."),
    guidance: float | None = _guidance_option(),
    video_guidance: float | None = _video_guidance_option(),
    device: str = typer.Option("cpu", help="Device of the bundle's model."),
    dtype: str | None = typer.Option(None, help="The model's dtype: float32 (default), bfloat16 or float16."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Does the editor draw what the instruction names? Asked against drawn, for every shape or colour."""

    from retake.eval.benchmark import load_benchmark
    from retake.eval.editors import BundleEditConfig, open_editor
    from retake.eval.probe import probe_adds

    if out is not None:
        files.check_output_file(_path_arg(out))  # before minutes of edits
    sampler = BundleEditConfig(
        steps=steps, guidance=guidance, video_guidance=video_guidance, device=device, dtype=dtype
    )
    editor = open_editor(bundle=_path_arg(model), config=sampler)
    benchmark = load_benchmark(_path_arg(bench))
    result = probe_adds(editor, benchmark, attribute, seed=seed, path=path, progress=progress)
    console.print(_probe_table(result))
    through = {
        "both": "",
        "tokens": " (the word in the text tokens only)",
        "pooled": " (the word in the pooled vector only)",
    }
    console.print(
        f"{attribute} drawn as asked{through.get(path, '')}: {result.right} of {len(result.edits)} "
        f"edits ({result.accuracy:.0%}; an editor deaf to the word: {result.chance:.0%})"
    )
    if result.skipped or result.unjudgeable:
        console.print(
            f"left out: {len(result.skipped)} samples whose instruction does not name the {attribute}, "
            f"{len(result.unjudgeable)} edits the oracle cannot read even in the ground truth"
        )
    if out is not None:
        files.remove_temporaries_of(_path_arg(out))  # of a run killed while it wrote OUT
        files.write_json(_path_arg(out), result.to_json())
        console.print(f"wrote {out}")


def _probe_table(result: ProbeResult) -> Table:
    from rich.table import Table

    drawn = [*result.values, *sorted({e.drawn for e in result.edits} - set(result.values))]
    table = Table(title=f"{result.attribute}: asked (rows) against drawn (columns)")
    table.add_column("asked")
    for name in drawn:
        table.add_column(name, justify="right")
    for asked, counts in result.confusion().items():
        table.add_row(asked, *(str(counts.get(name, "")) for name in drawn))
    return table


@eval_app.command("compare")
def eval_compare(
    a: Path = typer.Argument(
        ..., help="Report A: folder or report.json; a run over several --seed compares its pooled samples."
    ),
    b: Path = typer.Argument(..., help="Report B, the same way."),
    out: Path = typer.Option(..., "-o", "--out", help="HTML file to write."),
) -> None:
    """Two reports side by side with the differences B - A."""
    from retake.eval.report import write_comparison

    files.check_output_file(_path_arg(out))
    console.print(f"wrote {write_comparison(_path_arg(a), _path_arg(b), _path_arg(out))}")


if TYPE_CHECKING:
    from retake.eval.vlm_judge import VLMJudge


def _open_judge(judge: bool, url: str | None, model: str | None, key_env: str) -> VLMJudge | None:
    """The VLM judge of the --vlm-judge options, or None; a missing URL or model fails here, before edits."""
    if not judge:
        return None
    from retake.data.vlm import VLMClient
    from retake.eval.vlm_judge import VLMJudge

    return VLMJudge(VLMClient(url, model, api_key_env=key_env))


@eval_app.command("clips")
def eval_clips(
    tasks: Path = typer.Argument(
        ...,
        help='Task file: one {"id": optional, "source": video, "instruction": text} per line (JSONL); '
        "sources are found from its folder.",
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder; a stopped run there is resumed."),
    model: Path | None = typer.Option(None, "--model", help="A retake pipeline bundle to evaluate."),
    videos: Path | None = typer.Option(None, "--videos", help="Or: a folder of <id>.mp4 made elsewhere."),
    seed: int | None = typer.Option(
        None, help="Noise seed of every edit (default 0): `retake edit --seed` reproduces each."
    ),
    steps: int | None = typer.Option(None, help="Sampling steps (default: the bundle's)."),
    guidance: float | None = _guidance_option(),
    video_guidance: float | None = _video_guidance_option(),
    frames: int | None = typer.Option(
        None, help="Frames to edit, rounded down to 4k+1 (default: the bundle's, capped to each source)."
    ),
    size: str | None = typer.Option(
        None, help="Edit HEIGHTxWIDTH or N (default: about the bundle's pixels, in each source's shape)."
    ),
    fps: float | None = typer.Option(
        None, help="Resample each source to this frame rate first (as retake edit)."
    ),
    start: float = typer.Option(0.0, help="Seconds into each source where the edited part begins."),
    duration: str | None = typer.Option(
        None, help="Seconds to edit from --start, or 'all', in overlapping passes (as retake edit)."
    ),
    overlap: int | None = typer.Option(None, help="With --duration: frames each pass shares with the last."),
    clip: Path | None = typer.Option(
        None, "--clip", help="Local CLIP directory: adds the CLIP text-frame and frame-frame scores."
    ),
    judge: bool = typer.Option(False, "--vlm-judge", help="Also score with a VLM judge (0-3 rubric)."),
    judge_url: str | None = typer.Option(None, help="Judge endpoint ($RETAKE_VLM_BASE_URL)."),
    judge_model: str | None = typer.Option(None, help="Judge model ($RETAKE_VLM_MODEL)."),
    judge_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable with the judge's key."),
    device: str = typer.Option("cpu", help="Device of the bundle's model and of CLIP."),
    dtype: str | None = typer.Option(None, help="The model's dtype: float32 (default), bfloat16 or float16."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Score an editor on your own videos (no ground truth): edit each task, score it against its source."""
    from retake.eval import clips
    from retake.eval.editors import BundleEditConfig
    from retake.eval.runner import check_errors
    from retake.sample.grid import parse_size

    # Everything that can be checked without a model is checked before one loads (seconds to minutes).
    task_list = clips.read_tasks(_path_arg(tasks))
    stretch = clips.Stretch(fps=fps, start=start, duration=_duration_arg(duration), overlap=overlap)
    if (
        model is not None and stretch.duration is not None
    ):  # the passes fit the bundle: checked on its configs
        _check_passes(_path_arg(model), frames, overlap)
    size_hw = parse_size(size) if size is not None else None
    clip_dir = clip and _path_arg(clip)
    if clip_dir is not None and not clip_dir.is_dir():
        raise FileNotFoundError(f"CLIP directory not found: {clip_dir}")
    vlm_judge = _open_judge(judge, judge_url, judge_model, judge_key_env)
    config = clips.ClipsConfig()
    settings = {
        "judge": None if vlm_judge is None else vlm_judge.describe(),
        "clip": None if clip_dir is None else clips.clip_description(clip_dir),
        "config": config.identity(),
    }
    clips.check_run_folder(_path_arg(out), settings)
    editor = clips.open_clip_editor(
        bundle=model and _path_arg(model),
        edits=videos and _path_arg(videos),
        ids=[task.id for task in task_list],
        config=BundleEditConfig(
            steps=steps, guidance=guidance, video_guidance=video_guidance, device=device, dtype=dtype
        ),
        frames=frames,
        size=size_hw,
        seed=seed,
        stretch=stretch,
    )
    scorer = None
    if clip_dir is not None:
        from retake.eval.clip_score import ClipScorer

        scorer = ClipScorer.from_pretrained(clip_dir, device=device)
    result = clips.run_clips(
        task_list, editor, _path_arg(out), config, clip=scorer, judge=vlm_judge, progress=progress
    )
    page = clips.write_clips_report(result)
    console.print(clips.summary_table(result.summary))
    console.print(f"wrote {page} and {page.with_name(clips.REPORT_JSON)}")
    # check_errors raises when every sample failed: then the numbers say nothing about the editor.
    if (note := check_errors(result.rows, str(result.out_dir / clips.RESULTS_FILE))) is not None:
        console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)


# ----------------------------------------------------------------------------------------------------------
# edit / bundle
# ----------------------------------------------------------------------------------------------------------
@app.command("edit")
def edit_command(
    src: Path = typer.Argument(..., help="Source video (any size and frame rate)."),
    instruction: str = typer.Argument(..., help='What to change, e.g. "make the car red".'),
    out: Path = typer.Option(..., "-o", "--out", help="Edited video: .mp4 (or .gif for a preview)."),
    model: Path = typer.Option(..., "--model", help="Pipeline bundle directory (see `retake bundle`)."),
    steps: int | None = typer.Option(None, help="Denoising steps (default: the bundle's)."),
    guidance: float | None = _guidance_option(),
    video_guidance: float | None = _video_guidance_option(),
    seed: int = typer.Option(0, help="Noise seed; the same seed gives the same output."),
    frames: int | None = typer.Option(
        None,
        help="Frames to edit, rounded down to 4k+1 (default: the bundle's, capped to the source); with "
        "--duration, the frames of each pass.",
    ),
    size: str | None = typer.Option(
        None,
        help="Output HEIGHTxWIDTH or N (square), e.g. 480x768 (default: about the bundle's pixels, in the "
        "source's shape).",
    ),
    fps: float | None = typer.Option(
        None,
        help="Resample the source to this frame rate first, so the frames cover more time (default: its own).",
    ),
    start: float = typer.Option(0.0, help="Seconds into the source where the edited part begins."),
    duration: str | None = typer.Option(
        None,
        help="Seconds to edit from --start, or 'all' for the rest of the video, in overlapping passes of "
        "--frames frames, each continuing the last (default: one pass).",
    ),
    overlap: int | None = typer.Option(
        None, help="With --duration: frames each pass shares with the one before, 4m+1 or 0 (default: ~1/4)."
    ),
    device: str = typer.Option("cpu", help="torch device, e.g. cpu or cuda:0."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Edit a video as an instruction says, with a pipeline bundle."""
    from retake.checks import check_read_window
    from retake.sample import EditPipeline, edit_file, parse_size
    from retake.video import check_output, probe

    # What can be checked without the model is checked before it loads (seconds to minutes).
    check_output(_path_arg(out))
    if not _path_arg(src).exists():
        raise FileNotFoundError(f"source video not found: {_path_arg(src)}")
    info = probe(_path_arg(src))  # a folder, or a file that is empty, not a video or has no index, fails here
    seconds = _duration_arg(duration)
    check_read_window(fps, start, seconds)
    if overlap is not None and seconds is None:
        raise ValueError(f"--overlap {overlap} needs --duration: one pass has nothing to overlap")
    if (
        seconds is not None
    ):  # the passes fit the bundle's grid: checked on its configs, before the weights load
        _check_passes(_path_arg(model), frames, overlap)
    if start >= info.duration:
        raise ValueError(
            f"--start {start:g} s is past the end of {_path_arg(src)} ({info.duration:.2f} s long)"
        )
    if not instruction.strip():
        raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
    pipeline = EditPipeline.from_pretrained(_path_arg(model), device=device, dtype=dtype)
    sampler = dict(
        steps=steps, guidance=guidance, video_guidance=video_guidance, seed=seed, progress=progress
    )
    size_hw = parse_size(size) if size is not None else None
    written = edit_file(
        pipeline,
        _path_arg(src),
        _path_arg(out),
        instruction,
        frames=frames,
        size=size_hw,
        fps=fps,
        start=start,
        duration=seconds,
        overlap=overlap,
        info=info,
        note=lambda text: console.print(f"note: {text}"),
        **sampler,
    )
    console.print(f"wrote {written}")


def _check_passes(bundle: Path, frames: int | None, overlap: int | None) -> None:
    """`retake edit --duration`'s pass length and overlap against the bundle's grid."""
    from retake.sample.bundle import bundle_grid, read_bundle_spec
    from retake.sample.windows import fit_passes

    fit_passes(bundle_grid(bundle), read_bundle_spec(bundle).defaults.frames, frames, overlap)


def _duration_arg(text: str | None) -> float | None:
    """--duration: seconds, or 'all' (math.inf: to the end)."""
    if text is None:
        return None
    if text.strip().lower() == "all":
        return math.inf
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--duration must be seconds or 'all', got {text!r}") from None


@app.command("bundle")
def bundle_command(
    out: Path = typer.Argument(..., help="Bundle directory to write."),
    transformer: Path = typer.Option(
        ..., help="Transformer directory (e.g. `retake convert icve` output) or a checkout with transformer/."
    ),
    vae: Path = typer.Option(..., help="VAE directory, or a HunyuanVideo checkout with vae/."),
    text_encoder: str = typer.Option(
        "minilm", help="minilm (the installed all-MiniLM-L6-v2) or a directory, e.g. a HunyuanVideo checkout."
    ),
    defaults: str = typer.Option("icve", help="Sampler defaults: icve, insvie or flatland."),
    link: bool = typer.Option(False, help="Symlink the parts instead of copying them (not self-contained)."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it is not empty."),
) -> None:
    """Assemble a pipeline bundle (transformer + VAE + text encoder + sampler defaults) from parts on disk."""
    from retake.sample import assemble_bundle, get_defaults

    written = assemble_bundle(
        _path_arg(out),
        transformer=_path_arg(transformer),
        vae=_path_arg(vae),
        text_encoder=text_encoder if text_encoder == "minilm" else _path_arg(Path(text_encoder)),
        defaults=get_defaults(defaults),
        link=link,
        overwrite=overwrite,
    )
    console.print(f"wrote {written} (defaults: {defaults})")


# ----------------------------------------------------------------------------------------------------------
# vae
# ----------------------------------------------------------------------------------------------------------
vae_app = typer.Typer(help="Train and check the small Flatland video VAE.", no_args_is_help=True)
app.add_typer(vae_app, name="vae")


@vae_app.command("train")
def vae_train(
    out: Path = typer.Argument(..., help="Run folder: state.safetensors, log.jsonl, and vae/ when done."),
    steps: int = typer.Option(6000, help="Optimiser steps in all (a resumed run continues up to this)."),
    batch: int = typer.Option(4, help="Clips per step."),
    size: int = typer.Option(64, help="Render size of training and held-out clips (pixels, square)."),
    crop: int = typer.Option(32, help="Random training crop in pixels; 0 trains on whole frames."),
    frames: int = typer.Option(5, help="Frames per training clip (4k + 1)."),
    seed: int = typer.Option(0, help="Seed of the initial weights, clip stream and posterior noise."),
    init: Path | None = typer.Option(
        None, help="Start from these weights: an exported VAE folder or a run's state.safetensors."
    ),
    lr: float = typer.Option(5e-4, help="Peak AdamW learning rate (RGB-facing convolutions, biases, norms)."),
    muon_lr: float = typer.Option(0.02, help="Peak Muon learning rate (hidden convolution filters)."),
    warmup: int = typer.Option(50, help="Linear warm-up steps before the cosine decay."),
    ema_decay: float = typer.Option(
        0.0, help="EMA of the weights, e.g. 0.995 (0: none); evals score both, the export is the EMA."
    ),
    latent_channels: int = typer.Option(16, help="Latent channels (the editor's in_channels)."),
    widths: str = typer.Option(
        "16,32,32", help="Block widths (block_out_channels), comma-separated; one block per 2x downsampling."
    ),
    spatial_compression: int = typer.Option(4, help="Spatial compression (power of two; time is always 4x)."),
    style_share: float = typer.Option(0.25, help="Share of training clips in a global style (3 styles)."),
    resume: bool = typer.Option(
        False, help="Continue the run saved in OUT (with the options it was started with)."
    ),
    stop_after: int | None = typer.Option(
        None, help="Stop with a checkpoint once this many steps are done (resume later to finish)."
    ),
    device: str = typer.Option("cpu", help="Torch device to train on, e.g. cpu or cuda."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train a Flatland VAE (AutoencoderKLHunyuanVideo, 4x time / 4x space by default) into OUT/vae."""
    from retake.train.autoencoder import AutoencoderTrainConfig, VAEArchitecture, train_autoencoder

    arch = VAEArchitecture(
        latent_channels=latent_channels,
        block_out_channels=_int_list(widths, "widths"),
        spatial_compression=spatial_compression,
    )
    config = AutoencoderTrainConfig(
        arch=arch,
        style_share=style_share,
        steps=steps,
        batch=batch,
        size=size,
        eval_size=size,
        crop=crop or None,
        frames=frames,
        seed=seed,
        init=None if init is None else str(_path_arg(init)),
        lr=lr,
        muon_lr=muon_lr,
        warmup=warmup,
        ema_decay=ema_decay,
    )
    result = train_autoencoder(
        config, _path_arg(out), resume=resume, device=device, stop_after=stop_after, progress=progress
    )
    if result.steps < steps:
        console.print(f"stopped after {result.steps} of {steps} steps; continue with --resume")
        return
    _print_vae_scores(result.scores)
    console.print(f"wrote {result.vae_dir} after {result.steps} steps ({result.seconds:.0f} s)")


def _print_vae_scores(scores: dict) -> None:
    from retake.train.autoencoder import style_means

    for pattern, score in scores.items():
        console.print(f"{pattern:>9}: mean {score.mean:6.2f} dB  min {score.min:6.2f} dB")
    styles = "  ".join(f"{style} {value:.2f}" for style, value in style_means(scores).items())
    console.print(f"   styles: {styles} (mean dB)")


def _int_list(text: str, name: str) -> tuple[int, ...]:
    """ "16,32,32" -> (16, 32, 32); a ValueError naming the option otherwise."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"--{name} must be comma-separated integers such as 16,32,32, got {text!r}"
        ) from None


def _float_list(text: str, name: str) -> tuple[float, ...]:
    """ "5,7.5,10" -> (5.0, 7.5, 10.0); a ValueError naming the option otherwise."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated numbers such as 5,7.5,10, got {text!r}") from None


@vae_app.command("eval")
def vae_eval(
    vae_dir: Path = typer.Argument(..., help="A diffusers VAE folder (e.g. a run's OUT/vae)."),
    clips: int = typer.Option(4, help="Held-out clips per background pattern."),
    size: int = typer.Option(64, help="Clip size in pixels (square)."),
    frames: int = typer.Option(17, help="Frames per clip (4k + 1)."),
) -> None:
    """Reconstruction PSNR of a VAE on held-out Flatland clips, per background pattern."""
    from retake.model.vae import VideoVAE
    from retake.train.autoencoder import evaluate_heldout

    vae = VideoVAE.from_pretrained(_path_arg(vae_dir), tiling=None)
    _print_vae_scores(evaluate_heldout(vae.vae, clips=clips, size=size, frames=frames))


# ----------------------------------------------------------------------------------------------------------
# train / cache
# ----------------------------------------------------------------------------------------------------------
@app.command("train")
def train_command(
    config: Path = typer.Argument(..., help="Run config (TOML): model, stages, data. See docs/training.md."),
    out: Path | None = typer.Option(None, help="Train into this folder instead of the config's `out`."),
    device: str | None = typer.Option(None, help="Override the config's device: cpu, cuda or auto."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train the in-context editor stage by stage, resuming where a previous run stopped (torchrun: DDP/FSDP)."""
    import os

    from retake.train.config import load_run_config
    from retake.train.loop import train

    overrides = {k: v for k, v in {"out": out, "device": device}.items() if v is not None}
    result = train(
        load_run_config(_path_arg(config), **overrides),
        on_stage_start=lambda start: console.print(escape(_stage_start_line(start))),
        progress=progress,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
        for stage in result.stages:
            state = "already done" if stage.already_done else f"loss {stage.final_loss:.4f}"
            console.print(f"stage {stage.name}: {stage.steps} steps, {state} -> {stage.transformer}")


def _stage_start_line(start: StageStart) -> str:
    """'stage sft (2 of 2): 7000 steps at batch 8 on 36000 samples, from ...; 2.3 M parameters, all trained; cpu'."""
    steps = (
        f"{start.steps} steps"
        if not start.start_step
        else f"resuming at step {start.start_step} of {start.steps}"
    )
    trained = (
        "all trained" if start.trainable == start.parameters else f"{_millions(start.trainable)} trained"
    )
    device = start.device if start.world_size == 1 else f"{start.world_size} x {start.device}"
    kinds = f" ({', '.join(start.kinds)} only)" if start.kinds else ""
    if start.kind_shares:
        kinds += f" drawn as {', '.join(f'{kind} {share:.0%}' for kind, share in start.kind_shares)}"
    # More rows per batch than samples: each batch holds some sample twice, which a user should know of.
    repeats = (
        f"\nnote: batch {start.batch} is larger than the {start.samples} samples, so every batch repeats some"
        if start.batch > start.samples
        else ""
    )
    return (
        f"stage {start.name} ({start.index + 1} of {start.stages}): {steps} at batch {start.batch} on "
        f"{start.samples} samples{kinds}, from {start.init}; {_millions(start.parameters)} parameters, "
        f"{trained}; {device}{repeats}"
    )


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f} M" if count >= 100_000 else f"{count:,}"


@app.command("cache")
def cache_command(
    dataset: Path = typer.Argument(..., help="Flatland pairs or a `retake curate` output folder."),
    out: Path = typer.Argument(..., help="New cache folder: latents + text embeddings, safetensors shards."),
    vae: Path | None = typer.Option(
        None, help="Diffusers VAE folder (AutoencoderKLHunyuanVideo); needed to encode."
    ),
    vae_subfolder: str | None = typer.Option(None, help="Subfolder of --vae holding it (e.g. 'vae')."),
    text_encoder: str = typer.Option("minilm", help="'minilm' (bundled) or a text encoder folder."),
    frames: int = typer.Option(17, help="Frames per clip (4k + 1 for the causal VAE)."),
    size: str = typer.Option("64x64", help="Clip size HxW or N for NxN (resize to cover, centre crop)."),
    format: str = typer.Option("auto", help="auto, flatland or curated."),
    shard_size: int = typer.Option(256, help="Samples per shard."),
    bf16: bool = typer.Option(False, help="Store latents and text in bfloat16 (half the size)."),
    device: str = typer.Option("cpu", help="Where the VAE and text encoder run."),
    workers: int = typer.Option(1, help="Encoding processes (CPU only; each loads the VAE once)."),
    threads: int | None = typer.Option(
        None, help="Torch threads per encoding process (default: all cores for one process, 1 per worker)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    kinds_only: bool = typer.Option(
        False,
        help="OUT is a finished cache of DATASET: record DATASET's edit kinds in its index, encode nothing.",
    ),
    force: bool = typer.Option(
        False,
        help="With --kinds-only: label OUT from DATASET though OUT's index records another dataset (the same "
        "data, moved).",
    ),
) -> None:
    """Encode a dataset once (VAE latents + text embeddings) so training never runs the VAE.

    More data later goes to a new cache with the same VAE and text encoder; a stage trains on both with
    `data = { cache = ["old", "new"] }`. An interrupted run resumes when run again with the same arguments:
    the shards it wrote are kept and encoding picks up after them. The index keeps each sample's edit kind,
    so a stage can train on some kinds only (`data = { cache = ..., kinds = ["add"] }`); --kinds-only adds
    them to a cache built before caches kept them. A finished cache of the same arguments is left as it is.
    """
    import torch

    from retake.train.cache import cache_dataset, label_cache

    if kinds_only:
        counts = label_cache(_path_arg(out), _path_arg(dataset), format, force=force)
        listed = ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
        console.print(f"recorded the edit kinds of {sum(counts.values())} samples in {out}: {listed}")
        return
    if vae is None:
        raise ValueError("--vae is needed to encode a dataset (only --kinds-only works without it)")

    from retake.sample.grid import parse_size

    height, width = parse_size(size)
    summary = cache_dataset(
        _path_arg(dataset),
        _path_arg(out),
        vae=_path_arg(vae),
        vae_subfolder=vae_subfolder,
        text_encoder=text_encoder,
        frames=frames,
        size=(height, width),
        format=format,
        shard_size=shard_size,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        device=device,
        workers=workers,
        threads=threads,
        progress=progress,
    )
    skipped = sum(summary.skipped.values())
    if summary.existing:
        console.print(
            f"{out} already holds this cache ({summary.count} samples in {summary.shards} shards, {skipped} "
            "skipped); nothing to do"
        )
        return
    resumed = f"; resumed after {summary.resumed} done before" if summary.resumed else ""
    console.print(
        f"cached {summary.count} samples in {summary.shards} shards to {out} ({skipped} skipped{resumed})"
    )


# ----------------------------------------------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------------------------------------------
@app.command("demo")
def demo_command(
    out: Path = typer.Argument(..., help="Output folder for the footage, pairs, curated pairs and the edit."),
    quick: bool = typer.Option(False, "--quick", help="A smaller run (one short video, fewer edit steps)."),
) -> None:
    """The main job: build Flatland footage and pairs, curate pretraining pairs, then edit a shipped clip
    with the shipped flatland-s editor (writes OUT/edit.mp4 and OUT/side_by_side.gif)."""
    from retake.demo import DemoConfig, run_demo

    run_demo(_path_arg(out), DemoConfig.quick() if quick else DemoConfig(), console=console)


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------
# OSError covers what the machine refuses (a read-only disk, no permission, a full disk): the user's to fix.
USER_ERRORS = (RetakeError, ValueError, OSError)
ABORTED = 130  # the shell's code for a run stopped by Ctrl-C


def _hide_library_bars() -> None:
    from retake.model.weights import quiet_loading_bars

    quiet_loading_bars()


def _path_arg(p: Path) -> Path:
    return Path(p).expanduser()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning user errors into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    if "--no-progress" in args:  # every command's flag: also quiet the model libraries' loading bars
        _hide_library_bars()
    try:
        code = app(args=args, standalone_mode=False)
    except USER_ERRORS as exc:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
    except typer.Abort:
        code = ABORTED
    except Exception as exc:
        # Usage errors (missing argument, bad option). typer vendors its own copy of click, whose exception
        # classes are not click's, so recognise them by the interface they share.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
    # Without standalone mode typer *returns* the code of a Ctrl-C (KeyboardInterrupt) instead of exiting:
    # dropping it would report success to the shell, and `retake train a && retake train b` would go on.
    if code == ABORTED:
        console.print("[red]aborted[/]")
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
