"""Verb rewriting, instruction validation and the trivial-instruction filter."""

from __future__ import annotations

import random

import pytest

from retake.data.stages.trivial_filter import TrivialFilter
from retake.data.verbs import VERB_GROUPS, rewrite_verbs
from retake.data.writers import NO_CHANGE, validate_instruction


def test_canonical_mode_maps_synonyms_and_their_prepositions() -> None:
    rng = random.Random(0)
    assert rewrite_verbs("Insert a red ball.", mode="canonical", rng=rng) == "Add a red ball."
    assert (
        rewrite_verbs("Erase the tree and put a bench", mode="canonical", rng=rng)
        == "Remove the tree and add a bench"
    )
    assert (
        rewrite_verbs("Change the cat to a dog.", mode="canonical", rng=rng) == "Replace the cat with a dog."
    )
    assert (
        rewrite_verbs("Turn the sky into a sunset", mode="canonical", rng=rng)
        == "Replace the sky with a sunset"
    )
    assert rewrite_verbs("take out the lamp", mode="canonical", rng=rng) == "remove the lamp"


def test_only_clause_opening_verbs_change_and_prepositionless_turn_stays() -> None:
    rng = random.Random(0)
    assert rewrite_verbs("Zoom in on the change of light", mode="canonical", rng=rng) == (
        "Zoom in on the change of light"
    )
    assert rewrite_verbs("Turn the square red", mode="canonical", rng=rng) == "Turn the square red"
    assert (
        rewrite_verbs("Pan left, then erase the logo", mode="canonical", rng=rng)
        == "Pan left, then remove the logo"
    )


def test_diversify_draws_every_synonym_and_is_seeded() -> None:
    seen = {
        rewrite_verbs("Replace the cat with a dog.", mode="diversify", rng=random.Random(s))
        for s in range(60)
    }
    group = next(g for g in VERB_GROUPS if g.canonical == "replace")
    starts = {text.split()[0].lower() for text in seen}
    assert starts == set(group.verbs)
    for text in seen:  # each verb comes with its own preposition
        verb = text.split()[0].lower()
        assert f" {group.preps[group.verbs.index(verb)]} a dog" in text
    again = [rewrite_verbs("Add a hat", mode="diversify", rng=random.Random(7)) for _ in range(3)]
    assert len(set(again)) == 1
    assert rewrite_verbs("Add a hat", mode="off", rng=random.Random(7)) == "Add a hat"
    with pytest.raises(ValueError, match="'loud'"):
        rewrite_verbs("Add a hat", mode="loud", rng=random.Random(0))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Instruction: zoom out and pan to the right", "Zoom out and pan to the right."),
        ('"Replace the sofa with a bed."', "Replace the sofa with a bed."),
        ("**Answer:** remove the dog!", "Remove the dog."),
        ("No visible change.", NO_CHANGE),
    ],
)
def test_validate_instruction_cleans_answers(raw: str, clean: str) -> None:
    assert validate_instruction(raw) == clean


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty answer"),
        ("   ", "empty answer"),
        ("The camera zooms out.", "does not start with an imperative verb: 'The camera zooms out.'"),
        ("Zoom out. Then pan right.", "more than one sentence: 'Zoom out. Then pan right.'"),
        ("Add a cat\nRemove a dog", r"spans several lines: 'Add a cat\\nRemove a dog'"),
        ("add " * 70, r"answer has 70 words \(> 60\)"),
    ],
)
def test_validate_instruction_rejects_garbage(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        validate_instruction(raw)


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        (None, "no_change"),
        ("No change.", "no_change"),
        ("Keep everything the same.", "no_change"),
        ("Increase the brightness.", "photometric"),
        ("Apply a warm colour grade to the shot.", "photometric"),
        ("Make the image darker and raise the contrast.", "photometric"),
        ("Zoom.", "too_short"),
        ("Add " + "a very big red ball and " * 10 + "a cat.", "too_long"),
        ("Zoom out and pan to the right.", None),
        ("Replace the red circle with a blue star.", None),
    ],
)
def test_trivial_filter_reasons(instruction: str | None, reason: str | None) -> None:
    assert TrivialFilter(min_words=3, max_words=40).reason(instruction) == reason
