"""Verb rewriting for edit instructions: a table of verb groups (add/insert/put, remove/delete/erase,
replace/change/swap/turn ...) used to diversify phrasing or to map synonyms onto one canonical verb.

Only verbs that open a clause are rewritten (the sentence start, or after `,` `;` `and` `then`), so a noun
such as "the change of light" is left alone. Groups whose verbs take different prepositions (replace X *with*
Y, change X *to* Y, turn X *into* Y) rewrite the preposition too, and only when it is there: "turn it red" is a
recolour, not a replacement, and stays as written.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

MODES = ("off", "canonical", "diversify")


@dataclass(frozen=True)
class VerbGroup:
    """Interchangeable clause-opening verbs; `preps[i]` is the preposition `verbs[i]` takes before its second
    object (empty when the group does not rewrite prepositions). verbs[0] is the canonical one."""

    verbs: tuple[str, ...]
    preps: tuple[str, ...] = ()

    @property
    def canonical(self) -> str:
        return self.verbs[0]


VERB_GROUPS: tuple[VerbGroup, ...] = (
    VerbGroup(("add", "insert", "put", "place", "introduce")),
    VerbGroup(("remove", "delete", "erase", "take out", "get rid of")),
    VerbGroup(("replace", "change", "swap", "turn", "switch"), ("with", "to", "for", "into", "to")),
    VerbGroup(("recolor", "recolour", "paint", "color", "colour")),
    VerbGroup(("move", "shift", "slide")),
    VerbGroup(("enlarge", "scale up", "grow")),
    VerbGroup(("shrink", "scale down", "reduce")),
)

# First words an imperative edit instruction may start with (used to validate VLM answers).
IMPERATIVE_VERBS: frozenset[str] = frozenset(
    {v.split()[0] for g in VERB_GROUPS for v in g.verbs}
    | {"make", "zoom", "pan", "tilt", "rotate", "spin", "flip", "pull", "push", "track", "follow", "show"}
    | {"reveal", "hide", "let", "have", "give", "transform", "convert", "bring", "raise", "lower", "open"}
    | {"close", "extend", "widen", "narrow", "crop", "stop", "start", "keep", "dolly", "truck", "orbit"}
    | {"increase", "decrease", "brighten", "darken", "apply", "set", "fill", "cover", "wrap", "dress"}
    | {"fade", "blur", "sharpen", "animate", "swing", "drop", "lift", "walk", "run", "fly", "jump", "sit"}
)

_CLAUSE_START = r"(?:(?<=^)|(?<=[,;:]\s)|(?<=\band\s)|(?<=\bthen\s))"
_VERB_TO_GROUP = {v: g for g in VERB_GROUPS for v in g.verbs}
# Longest first, so "take out" wins over a shorter verb that shares its start.
_VERB_RE = re.compile(
    _CLAUSE_START
    + r"\b("
    + "|".join(re.escape(v) for v in sorted(_VERB_TO_GROUP, key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)
_PREP_RE = re.compile(r"\b(with|to|for|into)\b", re.IGNORECASE)


def rewrite_verbs(text: str, *, mode: str, rng: random.Random) -> str:
    """Rewrite the clause-opening verbs of `text`: "canonical" maps each to its group's first verb,
    "diversify" draws one of the group's verbs from `rng`, "off" returns `text` unchanged."""
    if mode not in MODES:
        raise ValueError(f"verb mode must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return text
    out, pos = [], 0
    for match in _VERB_RE.finditer(text):
        verb = match.group(1).lower()
        group = _VERB_TO_GROUP[verb]
        clause_end = _clause_end(text, match.end())
        prep = _PREP_RE.search(text, match.end(), clause_end) if group.preps else None
        if group.preps and prep is None:
            continue  # e.g. "turn it red": without its preposition the verb means something else
        new = group.canonical if mode == "canonical" else rng.choice(group.verbs)
        out.append(text[pos : match.start()])
        out.append(_same_case(match.group(1), new))
        if prep is not None:
            out.append(text[match.end() : prep.start()])
            out.append(_same_case(prep.group(1), group.preps[group.verbs.index(new)]))
            pos = prep.end()
        else:
            pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _clause_end(text: str, start: int) -> int:
    found = re.search(r"[,;:.!?]|\band\b|\bthen\b", text[start:])
    return len(text) if found is None else start + found.start()


def _same_case(original: str, new: str) -> str:
    return new[:1].upper() + new[1:] if original[:1].isupper() else new
