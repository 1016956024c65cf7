"""Text encoders: the bundled MiniLM, and HunyuanVideo's Llama + CLIP pair built tiny, saved and reloaded."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from retake.model.text import (
    TEXT_SPEC_FILE,
    HunyuanTextConfig,
    HunyuanTextEncoder,
    MiniLMConfig,
    MiniLMTextEncoder,
    TextEmbedding,
    TextEncoderLoadError,
    load_text_encoder,
    masked_mean,
    write_text_spec,
)

WORDS = [
    "a",
    "red",
    "ball",
    "rolls",
    "left",
    "blue",
    "square",
    "make",
    "the",
    "green",
    "describe",
    "video",
    ":",
    ".",
    "add",
    "remove",
    "it",
]
TEMPLATE = "<|sys|> describe the video : <|eot|> <|user|> {} <|eot|>"


def _word_tokenizer(specials: list[str], bos: str, eos: str | None, pad: str) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer (no download needed) that adds BOS (and EOS) like the real ones."""
    vocab = {tok: i for i, tok in enumerate([*specials, "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = f"{bos} $A" + (f" {eos}" if eos else "")
    special_ids = [(s, vocab[s]) for s in {bos, eos} if s]
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=special_ids)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token="<unk>",
        additional_special_tokens=[s for s in specials if s not in {bos, eos, pad}],
    )


@pytest.fixture(scope="module")
def hunyuan_dir(tmp_path_factory) -> Path:
    """A tiny random HunyuanVideo text stack in diffusers' layout: text_encoder(+tokenizer), *_2 for CLIP."""
    root = tmp_path_factory.mktemp("hunyuan_text")
    torch.manual_seed(0)
    llm_tok = _word_tokenizer(
        ["<|bos|>", "<|pad|>", "<|sys|>", "<|user|>", "<|eot|>"], "<|bos|>", None, "<|pad|>"
    )
    llm_cfg = LlamaConfig(
        vocab_size=len(llm_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=llm_tok.bos_token_id,
        pad_token_id=llm_tok.pad_token_id,
    )
    # A causal-LM checkpoint, as HunyuanVideo's original text_encoder: the loader must take its body only.
    LlamaForCausalLM(llm_cfg).save_pretrained(root / "text_encoder")
    llm_tok.save_pretrained(root / "tokenizer")
    clip_tok = _word_tokenizer(
        ["<|startoftext|>", "<|endoftext|>"], "<|startoftext|>", "<|endoftext|>", "<|endoftext|>"
    )
    clip_cfg = CLIPTextConfig(
        vocab_size=len(clip_tok),
        hidden_size=24,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=clip_tok.bos_token_id,
        eos_token_id=clip_tok.eos_token_id,
        pad_token_id=clip_tok.pad_token_id,
    )
    CLIPTextModel(clip_cfg).save_pretrained(root / "text_encoder_2")
    clip_tok.save_pretrained(root / "tokenizer_2")
    return root


def _reference_llm(root: Path):
    model = LlamaForCausalLM.from_pretrained(root / "text_encoder").model.eval()
    tok = PreTrainedTokenizerFast.from_pretrained(root / "tokenizer")
    return model, tok


def test_hunyuan_tokens_are_the_llm_state_two_layers_below_the_top(hunyuan_dir):
    enc = load_text_encoder(hunyuan_dir, max_length=8, clip_max_length=12)
    assert isinstance(enc, HunyuanTextEncoder)
    assert (enc.dim, enc.pooled_dim) == (32, 24)
    prompts = ["a red ball rolls left", "make the square green"]
    emb = enc.encode(prompts)
    assert emb.tokens.shape == (2, 8, 32) and emb.tokens.dtype == torch.float32
    assert emb.mask.dtype == torch.bool
    # BOS + 5 words, BOS + 4 words; the rest is padding
    assert emb.mask.sum(dim=1).tolist() == [6, 5]
    assert not emb.mask[0, 6:].any() and emb.mask[0, :6].all()

    # Independent reference: the decoder cut after layer 4 - 2 = 2, without its final norm.
    model, tok = _reference_llm(hunyuan_dir)
    cut = copy.deepcopy(model)
    cut.layers = cut.layers[:2]
    cut.norm = torch.nn.Identity()
    batch = tok(prompts, padding="max_length", max_length=8, return_tensors="pt")
    with torch.no_grad():
        ref = cut(**batch).last_hidden_state
        full = model(**batch, output_hidden_states=True)
    keep = emb.mask.unsqueeze(-1)
    torch.testing.assert_close(emb.tokens * keep, ref * keep)
    torch.testing.assert_close(emb.tokens, full.hidden_states[-3])
    assert not torch.allclose(emb.tokens * keep, full.last_hidden_state * keep)


def test_hunyuan_skip_layers_zero_takes_the_final_normed_output(hunyuan_dir):
    enc = HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(skip_layers=0, max_length=8))
    model, tok = _reference_llm(hunyuan_dir)
    batch = tok(["blue ball"], padding="max_length", max_length=8, return_tensors="pt")
    with torch.no_grad():
        ref = model(**batch).last_hidden_state
    torch.testing.assert_close(enc.encode(["blue ball"]).tokens, ref)


def test_hunyuan_template_prefix_is_cropped(hunyuan_dir):
    enc = HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(template=TEMPLATE, max_length=10))
    # BOS + <|sys|> describe the video : <|eot|> <|user|> = 8 tokens before the prompt
    assert enc.crop_start == 8
    emb = enc.encode(["a red ball"])
    assert emb.tokens.shape == (1, 10, 32)
    # the prompt's 3 words and the template's closing <|eot|> remain
    assert emb.mask.sum().item() == 4

    model, tok = _reference_llm(hunyuan_dir)
    batch = tok([TEMPLATE.format("a red ball")], padding="max_length", max_length=18, return_tensors="pt")
    assert tok.convert_ids_to_tokens(batch["input_ids"][0, 8:12].tolist()) == ["a", "red", "ball", "<|eot|>"]
    with torch.no_grad():
        ref = model(**batch, output_hidden_states=True).hidden_states[-3][:, 8:]
    torch.testing.assert_close(emb.tokens, ref)
    # the template matters: the causal model sees the system prompt before the instruction
    bare = HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(max_length=10)).encode(["a red ball"])
    assert not torch.allclose(bare.tokens[0, 1:4], emb.tokens[0, :3])
    # an explicit crop_start wins over counting
    assert HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(template=TEMPLATE, crop_start=3)).crop_start == 3


def test_hunyuan_pooled_vector_is_the_clip_pooler_output(hunyuan_dir):
    enc = HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(max_length=8, clip_max_length=12))
    prompts = ["a red ball", "remove it"]
    pooled = enc.encode(prompts).pooled
    assert pooled.shape == (2, 24)
    clip = CLIPTextModel.from_pretrained(hunyuan_dir / "text_encoder_2").eval()
    tok = PreTrainedTokenizerFast.from_pretrained(hunyuan_dir / "tokenizer_2")
    ids = tok(prompts, padding="max_length", max_length=12, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = clip(input_ids=ids)
    torch.testing.assert_close(pooled, out.pooler_output)
    # the pooler takes the state at the first end-of-text token (position 1 + 3 words = 4 for the first prompt)
    torch.testing.assert_close(pooled[0], out.last_hidden_state[0, 4])
    assert not torch.allclose(pooled[0], pooled[1])


def test_hunyuan_dtype_argument(hunyuan_dir):
    enc = load_text_encoder(hunyuan_dir, dtype=torch.bfloat16, max_length=4)
    emb = enc.encode(["a ball"])
    assert emb.tokens.dtype == torch.bfloat16 and emb.pooled.dtype == torch.bfloat16


def test_spec_file_overrides_the_defaults(hunyuan_dir, tmp_path):
    # the same parts under other names, described by the spec file
    for src, dst in [
        ("text_encoder", "llm"),
        ("tokenizer", "llm"),
        ("text_encoder_2", "clip"),
        ("tokenizer_2", "clip"),
    ]:
        for f in (hunyuan_dir / src).iterdir():
            (tmp_path / dst).mkdir(exist_ok=True)
            (tmp_path / dst / f.name).write_bytes(f.read_bytes())
    write_text_spec(
        tmp_path, "hunyuan", llm="llm", llm_tokenizer="llm", clip="clip", clip_tokenizer="clip", max_length=5
    )
    spec = json.loads((tmp_path / TEXT_SPEC_FILE).read_text())
    assert spec["kind"] == "hunyuan" and spec["max_length"] == 5
    emb = load_text_encoder(tmp_path).encode(["a red ball"])
    assert emb.tokens.shape == (1, 5, 32)
    # the renamed parts are the same encoders: the same embedding as the default layout at max_length 5
    expected = HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(max_length=5)).encode(["a red ball"])
    torch.testing.assert_close(emb.tokens, expected.tokens)
    torch.testing.assert_close(emb.pooled, expected.pooled)
    assert torch.equal(emb.mask, expected.mask)


def test_bad_specs_and_settings_raise_naming_the_problem(hunyuan_dir, tmp_path):
    with pytest.raises(TextEncoderLoadError, match="not a HunyuanVideo layout"):
        load_text_encoder(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_text_encoder(tmp_path / "nowhere")
    (tmp_path / TEXT_SPEC_FILE).write_text(json.dumps({"kind": "t5"}))
    with pytest.raises(TextEncoderLoadError, match="'t5'"):
        load_text_encoder(tmp_path)
    with pytest.raises(TextEncoderLoadError, match="max_tokens"):
        load_text_encoder(hunyuan_dir, max_tokens=3)
    with pytest.raises(ValueError, match="skip_layers=9"):
        HunyuanTextEncoder(hunyuan_dir, HunyuanTextConfig(skip_layers=9))
    with pytest.raises(ValueError, match="no placeholder"):
        HunyuanTextConfig(template="no placeholder")
    with pytest.raises(ValueError, match="single string"):
        HunyuanTextEncoder(hunyuan_dir).encode("a red ball")  # type: ignore[arg-type]


def test_hunyuan_encodes_a_generator_once_for_both_of_its_encoders(hunyuan_dir):
    enc = HunyuanTextEncoder(hunyuan_dir)
    prompts = ["a red ball", "add a hat"]
    emb, expected = enc.encode(p for p in prompts), enc.encode(prompts)
    torch.testing.assert_close(emb.tokens, expected.tokens)
    torch.testing.assert_close(emb.pooled, expected.pooled)  # CLIP saw the prompts too, not a spent generator


def test_text_embedding_checks_shapes_and_moves():
    emb = TextEmbedding(
        tokens=torch.zeros(2, 3, 4), mask=torch.ones(2, 3, dtype=torch.bool), pooled=torch.zeros(2, 5)
    )
    assert len(emb) == 2
    half = emb.to(dtype=torch.float16)
    assert half.tokens.dtype == torch.float16 and half.mask.dtype == torch.bool
    with pytest.raises(ValueError, match=r"mask \(2, 4\)"):
        TextEmbedding(
            tokens=torch.zeros(2, 3, 4), mask=torch.ones(2, 4, dtype=torch.bool), pooled=torch.zeros(2, 5)
        )


def test_masked_mean_ignores_padding():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(masked_mean(tokens, mask), torch.tensor([[2.0, 3.0]]))


# ----------------------------------------------------------------------------------------------------------
# MiniLM (the real, bundled weights: about a second to load)
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> MiniLMTextEncoder:
    enc = load_text_encoder("minilm")
    assert isinstance(enc, MiniLMTextEncoder)
    return enc


def test_minilm_shapes_mask_and_pooling(minilm):
    assert (minilm.dim, minilm.pooled_dim) == (384, 384)
    emb = minilm.encode(["a red ball rolls left", "add a blue square"])
    assert emb.tokens.shape == (2, 77, 384) and emb.pooled.shape == (2, 384)
    # [CLS] + 5 words + [SEP], [CLS] + 4 words + [SEP]
    assert emb.mask.sum(dim=1).tolist() == [7, 6]
    pooled = torch.nn.functional.normalize(masked_mean(emb.tokens, emb.mask), dim=-1)
    torch.testing.assert_close(emb.pooled, pooled)
    torch.testing.assert_close(emb.pooled.norm(dim=-1), torch.ones(2))


def test_minilm_is_deterministic_and_tells_sentences_apart(minilm):
    a = minilm.encode(["make the ball green", "make the ball green", "remove the square"])
    torch.testing.assert_close(a.tokens[0], a.tokens[1])
    torch.testing.assert_close(a.pooled[0], a.pooled[1])
    assert (a.pooled[0] - a.pooled[2]).abs().max() > 0.05
    # batching does not change a prompt's encoding
    torch.testing.assert_close(
        minilm.encode(["remove the square"]).pooled[0], a.pooled[2], atol=1e-5, rtol=1e-5
    )


@pytest.mark.slow  # importing sentence-transformers alone takes several seconds
def test_minilm_matches_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from retake.model.text import minilm_dir

    reference = sentence_transformers.SentenceTransformer(str(minilm_dir()), device="cpu")
    sentences = ["turn the red circle into a blue star", "zoom out and pan to the right"]
    expected = torch.as_tensor(reference.encode(sentences))
    torch.testing.assert_close(minilm.encode(sentences).pooled, expected, atol=1e-5, rtol=1e-4)


def test_minilm_takes_any_iterable_of_strings_and_names_what_is_not_one(minilm):
    expected = minilm.encode(["make it snow", "add a hat"])
    torch.testing.assert_close(
        minilm.encode(p for p in ("make it snow", "add a hat")).pooled, expected.pooled
    )
    for prompts, message in [
        ([None], r"prompts\[0\] must be a str, got NoneType None"),
        (["add a hat", 1], r"prompts\[1\] must be a str, got int 1"),
        (b"add a hat", "single string"),
        (3, "prompts must be a list of strings, got int"),
        ((p for p in ()), "prompts is empty"),
    ]:
        with pytest.raises(ValueError, match=message):
            minilm.encode(prompts)


def test_minilm_max_length_and_unnormalised_option():
    enc = MiniLMTextEncoder(config=MiniLMConfig(max_length=4, normalize=False))
    emb = enc.encode(["a very long sentence that will be truncated"])
    assert emb.tokens.shape == (1, 4, 384) and emb.mask.all()
    torch.testing.assert_close(emb.pooled, emb.tokens.mean(dim=1))
    with pytest.raises(ValueError, match="1000"):
        MiniLMTextEncoder(config=MiniLMConfig(max_length=1000))
