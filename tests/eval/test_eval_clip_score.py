"""CLIP text-frame and frame-frame similarity, with a tiny random CLIP saved to a temp dir (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

from retake.eval.clip_score import ClipScorer
from retake.eval.metrics import evaluate_edit


@pytest.fixture(scope="module")
def scorer(tiny_clip) -> ClipScorer:
    return ClipScorer.from_pretrained(tiny_clip, device="cpu", batch_size=3)


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)


def test_embeddings_are_unit_vectors_of_the_projection_size(scorer, frames):
    images, texts = scorer.embed_frames(frames), scorer.embed_texts(["a red car", "make it blue"])
    assert images.shape == (5, 16) and texts.shape == (2, 16)
    np.testing.assert_allclose(images.norm(dim=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(texts.norm(dim=-1), 1.0, atol=1e-5)


def test_batching_does_not_change_the_embeddings(tiny_clip, scorer, frames):
    whole = ClipScorer.from_pretrained(tiny_clip, batch_size=16).embed_frames(frames)
    torch.testing.assert_close(scorer.embed_frames(frames), whole, atol=1e-5, rtol=1e-5)


def test_identical_frames_are_perfectly_consistent(scorer, frames):
    assert scorer.frame_similarity(np.repeat(frames[:1], 4, axis=0)) == pytest.approx(1.0, abs=1e-5)
    assert scorer.frame_similarity(frames) < 0.999


def test_scores_equal_a_manual_computation_with_the_model(tiny_clip, scorer, frames):
    model = CLIPModel.from_pretrained(tiny_clip, local_files_only=True).eval()
    processor = CLIPImageProcessorPil.from_pretrained(tiny_clip)
    tokenizer = CLIPTokenizer.from_pretrained(tiny_clip)
    with torch.no_grad():
        pixels = processor(images=list(frames), return_tensors="pt")["pixel_values"]
        image = model.get_image_features(pixel_values=pixels).pooler_output
        tokens = tokenizer(["red hat"], return_tensors="pt")
        text = model.get_text_features(**tokens).pooler_output
    image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    scores = scorer.scores(frames, "red hat")
    assert scores.text_frame == pytest.approx(float((image @ text[0]).mean()), abs=1e-5)
    assert scores.frame_frame == pytest.approx(float((image[:-1] * image[1:]).sum(-1).mean()), abs=1e-5)
    assert scorer.text_frame_similarity(frames, "red hat") == pytest.approx(scores.text_frame)
    assert scorer.scores(frames).text_frame is None and scorer.scores(frames[:1]).frame_frame is None


def test_long_texts_are_truncated_to_the_context(scorer):
    # the tiny CLIP's context is 16 tokens (BOS, 14 characters, EOS): what follows the 14th is cut off
    long, other_tail, other_head = scorer.embed_texts(
        ["a very long instruction " * 20, "a very long instruction " * 2 + "xyz", "a very short instruction"]
    )
    assert long.shape == (16,)
    torch.testing.assert_close(long, other_tail, atol=1e-6, rtol=0)
    assert (long - other_head).abs().max() > 0.01  # within the context the text still counts


def test_evaluate_edit_adds_clip_metrics_when_a_scorer_is_given(scorer, frames):
    video = np.repeat(frames[:1], 3, axis=0)
    results = evaluate_edit(video, video, instruction="add a hat", clip=scorer)
    assert results["clip_frame_frame"] == pytest.approx(1.0, abs=1e-5)
    assert results["clip_text_frame"] == pytest.approx(scorer.text_frame_similarity(video, "add a hat"))
    assert "clip_text_frame" not in evaluate_edit(video, video, clip=scorer)


def test_a_list_of_prompts_is_refused_not_scored_as_one_pre_tokenised_text(scorer, frames):
    with pytest.raises(ValueError, match=r"text must be one string .* got \['add a hat'\]"):
        scorer.scores(frames, ["add a hat"])
    with pytest.raises(ValueError, match=r"instruction must be one string, got \['a', 'b'\]"):
        evaluate_edit(frames, frames, instruction=["a", "b"], clip=scorer)
    with pytest.raises(ValueError, match=r"sequence of strings, got \[None\]"):
        scorer.embed_texts([None])


def test_missing_or_incomplete_directories_are_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipScorer.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="incomplete"):
        ClipScorer.from_pretrained(tmp_path)


def test_bad_arguments_are_rejected(scorer):
    with pytest.raises(ValueError, match="batch_size"):
        ClipScorer(scorer.model, scorer.tokenizer, scorer.image_processor, batch_size=0)
    with pytest.raises(ValueError, match="non-empty sequence"):
        scorer.embed_texts("a bare string")
