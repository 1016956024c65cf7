"""The main job (`retake demo OUT`): Flatland data, curation, and a real edit with the shipped editor.

1. build raw Flatland footage and paired edits, and curate ICVE pretraining pairs from the footage;
2. print a table of what was made;
3. edit the shipped Flatland clip with its suggested instruction using the shipped flatland-s editor (arm B's
   recipe with residual prediction, configs/flatland/editor.toml and the five parts after it, README "Main
   job": pretrained on curated footage pairs, then fine-tuned on paired edits), write
   OUT/edit.mp4 and OUT/side_by_side.gif (source | edit | ground truth), and score the edit with the oracle
   judge and PSNR against the clip's ground truth.

Step 3 is skipped, with a message saying why, only when the shipped bundle is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ASSETS = Path(__file__).resolve().parent / "assets" / "flatland"
EDITOR = ASSETS / "editor"
CLIPS = ASSETS / "clips"
DEFAULT_CLIP = CLIPS / "recolour.json"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. `quick` is what the tests run (well under a minute on one core)."""

    videos: int = 3  # raw footage videos
    seconds: float = 12.0  # length of each
    pairs: int = 12  # paired edits (two of each kind)
    edit_steps: int | None = None  # Euler steps of the edit; None: the editor's default
    seed: int = 0
    workers: int = 1  # curation processes
    editor: Path = EDITOR
    clip: Path = DEFAULT_CLIP  # the shipped clip's JSON (its mp4s sit beside it)

    def __post_init__(self) -> None:
        if self.videos < 1 or self.pairs < 1 or self.workers < 1:
            raise ValueError(
                f"need videos, pairs and workers >= 1, got {self.videos}, {self.pairs}, {self.workers}"
            )
        if self.seconds < 4:
            raise ValueError(f"seconds must be >= 4 (curation drops shorter scenes), got {self.seconds}")
        if self.edit_steps is not None and self.edit_steps < 1:
            raise ValueError(f"edit_steps must be >= 1 or None, got {self.edit_steps}")

    @classmethod
    def quick(cls) -> DemoConfig:
        return cls(videos=1, seconds=8.0, pairs=6, edit_steps=10)


@dataclass(frozen=True)
class DemoResult:
    footage: list[Path]
    pairs: Path  # manifest.jsonl of the paired edits
    curated: Path  # manifest.parquet of the curated pretraining pairs
    curated_pairs: int  # pairs curation kept
    edit: Path | None  # OUT/edit.mp4, None when the editor is missing
    gif: Path | None  # OUT/side_by_side.gif
    verdict: dict[str, Any] | None  # the oracle judge's verdict and PSNR of the edit


def run_demo(
    out: str | Path, config: DemoConfig = DemoConfig(), *, console: Console | None = None
) -> DemoResult:
    """Run the main job into `out` (see the module docstring) and print what it made."""
    console = console or Console()
    out = Path(out).expanduser()
    footage, pairs, (curated, kept) = build_data(out, config)
    console.print(data_table(footage, pairs, curated, kept))
    if not (config.editor / "retake_pipeline.json").is_file():
        console.print(
            f"[yellow]skipping the edit: no editor bundle at {config.editor} "
            "(train and ship one with benchmarks/icve_flatland.py --ship)[/]"
        )
        return DemoResult(footage, pairs, curated, kept, None, None, None)
    edit, gif, verdict = edit_clip(out, config)
    clip = load_clip(config.clip)
    console.print(f'edited {clip["source"]} with "{clip["instruction"]}" using {config.editor}')
    console.print(
        f"oracle judge: {'success' if verdict['success'] else 'failure'} ({verdict['reason']}); "
        f"PSNR vs ground truth {verdict['psnr']:.1f} dB (the unedited source scores {verdict['source_psnr']:.1f} dB)"
    )
    console.print(f"wrote {edit} and {gif} (source | edit | ground truth)")
    return DemoResult(footage, pairs, curated, kept, edit, gif, verdict)


# ----------------------------------------------------------------------------------------------------------
# 1-2. data
# ----------------------------------------------------------------------------------------------------------
def build_data(out: Path, config: DemoConfig) -> tuple[list[Path], Path, tuple[Path, int]]:
    """Footage, paired edits and curated pairs under `out`; returns their paths and the kept pair count."""
    from retake.data.recipes import get_recipe
    from retake.data.runner import curate
    from retake.flatland import make_footage, make_pairs

    footage = make_footage(
        out / "footage",
        videos=config.videos,
        seconds=config.seconds,
        size=64,
        seed=config.seed,
        progress=False,
    )
    pairs = make_pairs(out / "pairs", n=config.pairs, size=64, frames=17, seed=config.seed, progress=False)
    # 64 px footage: curated clips stay 64 px; the oracle describer writes the instructions.
    recipe = get_recipe("icve-pretrain").replace(writer="flatland", output_short_side=64, seed=config.seed)
    result = curate(out / "footage", out / "curated", recipe, workers=config.workers, progress=False)
    return footage, pairs, (result.manifest, int(result.stats.get("pairs_ok", 0)))


def data_table(footage: list[Path], pairs: Path, curated: Path, kept: int) -> Table:
    """What the demo made: one row per kind of data, with its folder (relative to OUT) and an example."""
    truths = [json.loads(p.with_suffix(".json").read_text()) for p in footage]
    frames, cuts = sum(t["num_frames"] for t in truths), sum(len(t["cuts"]) for t in truths)
    fps = truths[0]["fps"]
    records = [json.loads(line) for line in pairs.read_text().splitlines() if line.strip()]
    kinds = sorted({r["edit"]["kind"] for r in records})
    table = Table(title="what the demo made")
    for column in ("data", "count", "folder", "example"):
        table.add_column(column)
    table.add_row(
        "raw footage",
        f"{len(footage)} video(s), {frames / fps:.0f} s at 64x64",
        "footage/",
        f"{cuts} hard cuts",
    )
    table.add_row("paired edits", f"{len(records)}: {', '.join(kinds)}", "pairs/", records[0]["instruction"])
    table.add_row("curated pretraining pairs", str(kept), "curated/", _curated_example(curated))
    return table


def _curated_example(manifest: Path) -> str:
    import pyarrow.parquet as pq

    rows = pq.read_table(manifest, columns=["status", "instruction"]).to_pylist()
    return next((r["instruction"] for r in rows if r["status"] == "ok" and r["instruction"]), "")


# ----------------------------------------------------------------------------------------------------------
# 3. the edit
# ----------------------------------------------------------------------------------------------------------
def load_clip(path: Path) -> dict[str, Any]:
    """A shipped clip's description: source/target mp4 names (beside the JSON), instruction, structured edit."""
    if not path.is_file():
        raise FileNotFoundError(f"shipped clip description {path} not found")
    clip = json.loads(path.read_text())
    missing = [k for k in ("source", "target", "instruction", "edit") if k not in clip]
    if missing:
        raise ValueError(f"{path}: clip description lacks {missing}")
    return clip


def edit_clip(out: Path, config: DemoConfig) -> tuple[Path, Path, dict[str, Any]]:
    """Edit the shipped clip with the shipped editor; write OUT/edit.mp4 and OUT/side_by_side.gif."""
    from retake.eval.psnr import psnr
    from retake.eval.report import side_by_side
    from retake.flatland import Edit, judge
    from retake.sample import EditPipeline
    from retake.video import read, write, write_gif

    clip = load_clip(config.clip)
    source = read(config.clip.parent / clip["source"])
    target = read(config.clip.parent / clip["target"])
    pipeline = EditPipeline.from_pretrained(config.editor)
    edited = pipeline.edit(
        source,
        clip["instruction"],
        steps=config.edit_steps,
        seed=config.seed,
        frames=source.num_frames,
        size=(source.height, source.width),
        progress=False,
    )  # (F, H, W, 3) at the source's frame count, size and fps
    edit = write(edited, out / "edit.mp4")
    gif = write_gif(side_by_side([source, edited, target], scale=2), out / "side_by_side.gif")
    verdict = judge(source.frames, edited.frames, Edit.from_json(clip["edit"]))
    scores = {
        "success": verdict.success,
        "reason": verdict.reason,
        "psnr": psnr(edited.frames, target.frames),
        "source_psnr": psnr(source.frames, target.frames),
    }
    return edit, gif, scores


def make_clip(folder: str | Path, name: str, *, kind: str, seed: int) -> Path:
    """Render a shipped-clip triple: NAME.source.mp4, NAME.target.mp4 (the ground-truth edit) and NAME.json
    (what the scene holds, the suggested instruction and the structured edit the judge checks); 17 frames of
    64x64 at 8 fps, written lossless (crf 0) so the ground truth is exact up to 4:2:0 chroma."""
    from retake.flatland import make_pair
    from retake.video import Video, write

    folder = Path(folder).expanduser()
    pair = make_pair(kind, size=64, frames=17, fps=8, seed=seed)
    write(Video(pair.source, pair.fps), folder / f"{name}.source.mp4", crf=0)
    write(Video(pair.target, pair.fps), folder / f"{name}.target.mp4", crf=0)
    objects = [f"{o.size} {o.colour} {o.shape}" for o in pair.scene.objects]
    clip = {
        "source": f"{name}.source.mp4",
        "target": f"{name}.target.mp4",
        "instruction": pair.instruction,
        "edit": pair.edit.to_json(),
        "scene": {
            "objects": objects,
            "background": f"{pair.scene.background.colour} {pair.scene.background.pattern}",
        },
        "frames": int(pair.source.shape[0]),
        "fps": pair.fps,
        "size": list(pair.source.shape[1:3]),
        "made_by": f"retake.demo.make_clip(kind={kind!r}, seed={seed})",
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(clip, indent=1) + "\n")
    return path
