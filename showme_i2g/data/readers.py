"""Readers that turn each dataset's annotation files into :class:`~.records.Recipe` records.

One function per source, each returning a :class:`~.records.ReadResult`:

- :func:`read_captaincook4d` -- one recipe per recording, steps in the order performed, steps with errors removed
  (the I2G paper trains only on correctly performed steps).
- :func:`read_htstep` -- one recipe per article (activity and variation) from ``taxonomy.csv``, or, given
  ``annotations.json``, one per video with each step's time span.
- :func:`read_wikihow` -- VGSI-style JSON lines: one recipe per method of each article, with step images.
- :func:`read_epic100` -- one recipe per video: its narrations ordered by start time (EPIC has no goal text).
- :func:`read_ssv2` -- one single-step record per clip, the template filled with its placeholders.
- :func:`read_ego4d` -- Ego4D ``narration.json``: one recipe per video, a step per camera-wearer narration.
- :func:`read_recipes_json` -- the project's own layout (a JSON list of goals and steps), e.g. a test split.

A file that cannot be opened or parsed as a whole raises :class:`~showme_i2g.errors.InvalidInputError`; a bad
row is skipped and reported in ``ReadResult.problems`` with its file and line, so data loss is always visible.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from ..errors import InvalidInputError
from .records import Problem, ReadResult, Recipe, Step, logger

__all__ = [
    "fill_template",
    "read_captaincook4d",
    "read_ego4d",
    "read_epic100",
    "read_htstep",
    "read_recipes_json",
    "read_ssv2",
    "read_wikihow",
    "template_label",
]

PathLike = str | Path


# --- file access ---------------------------------------------------------------------------------------------------


def _read_text(path: PathLike) -> str:
    """The whole file as text (a UTF-8 byte-order mark is dropped); unreadable files are the user's to fix."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"The annotation file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"The annotation file {path} cannot be read as UTF-8 text ({error}).") from None


def _csv_rows(path: PathLike, required: Sequence[str], result: ReadResult) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file as dicts with the line each row starts on; rows of the wrong width are reported."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise InvalidInputError(f"The CSV file {path} is empty.") from None
    except csv.Error as error:
        raise InvalidInputError(f"The CSV file {path} cannot be parsed ({error}).") from None
    missing = [name for name in required if name not in header]
    if missing:
        raise InvalidInputError(f"The CSV file {path} lacks the column(s) {', '.join(missing)}.")
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidInputError(f"The CSV file {path} cannot be parsed near line {line} ({error}).") from None
        if not row:  # blank line
            line = reader.line_num + 1
            continue
        if len(row) != len(header):
            result.problem(path, line, f"has {len(row)} fields where the header names {len(header)}")
        else:
            yield line, dict(zip(header, row))
        line = reader.line_num + 1


_WHITESPACE = " \t\r\n"


def _json_members(path: PathLike) -> Iterator[tuple[int, str | None, Any]]:
    """The top-level members of a JSON array or object as ``(line, key, value)``; ``key`` is None in an array.

    Parsed member by member with :meth:`json.JSONDecoder.raw_decode`, so each record knows the line it starts on
    and a reader can report "file:line" for a bad record instead of only its position.
    """
    text = _read_text(path)
    decoder = json.JSONDecoder()
    pos, line = 0, 1

    def skip(to: int) -> int:
        while to < len(text) and text[to] in _WHITESPACE:
            to += 1
        return to

    def advance(to: int) -> None:
        nonlocal pos, line
        line += text.count("\n", pos, to)
        pos = to

    def decode() -> Any:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"The JSON file {path} is not valid JSON ({error}).") from None
        advance(end)
        return value

    advance(skip(0))
    if pos >= len(text) or text[pos] not in "[{":
        raise InvalidInputError(f"The JSON file {path} does not hold a JSON list or object.")
    closing, is_object = ("}", True) if text[pos] == "{" else ("]", False)
    advance(skip(pos + 1))
    if pos < len(text) and text[pos] == closing:
        return
    while True:
        start_line, key = line, None
        if is_object:
            key = decode()
            advance(skip(pos))
            if not isinstance(key, str) or pos >= len(text) or text[pos] != ":":
                raise InvalidInputError(f"The JSON file {path} is not valid JSON near line {line}.")
            advance(skip(pos + 1))
            start_line = line
        value = decode()
        yield start_line, key, value
        advance(skip(pos))
        if pos < len(text) and text[pos] == ",":
            advance(skip(pos + 1))
            continue
        if pos < len(text) and text[pos] == closing:
            return
        raise InvalidInputError(f"The JSON file {path} is not valid JSON near line {line}.")


# --- small parsers shared by the readers ---------------------------------------------------------------------------


def _float(value: str, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} {value!r} is not a finite number")
    return number


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a whole number") from None


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"{name} {value!r} is neither True nor False")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is empty or not text")
    return " ".join(value.split())


def _typed_rows(
    path: PathLike,
    columns: Mapping[str, Callable[[Any, str], Any]],
    result: ReadResult,
    *,
    also: Sequence[str] = (),
) -> Iterator[tuple[int, dict[str, Any], dict[str, str]]]:
    """(line, {column: parsed value}, raw row) for each CSV row whose ``columns`` all parse (each with its parser,
    e.g. :func:`_int`); a row that does not is reported with the parser's reason and skipped. ``also`` names
    columns that must exist but are read raw."""
    for line, row in _csv_rows(path, (*columns, *also), result):
        try:
            values = {name: parse(row[name], name) for name, parse in columns.items()}
        except ValueError as error:
            result.problem(path, line, str(error))
            continue
        yield line, values, row


def _join(headline: str, body: str) -> str:
    """A headline and its paragraph as one long step text (I2G conditions on both)."""
    body = " ".join(body.split()).rstrip(";").strip()
    if not body:
        return headline
    if body.startswith(headline):
        return body
    return f"{headline} {body}"


# --- CaptainCook4D -------------------------------------------------------------------------------------------------

_ACTION_LABEL = re.compile(r"^\s*(?P<label>[A-Za-z]+(?: [A-Za-z]+){0,3})\s*-\s*(?P<step>\S.*)$", re.DOTALL)


def _split_captaincook_description(description: str) -> tuple[str | None, str]:
    """``"Pour-Pour 1 egg into the ramekin cup"`` -> ``("Pour", "Pour 1 egg into the ramekin cup")``.

    Every CaptainCook4D step starts with an action label of one to four words and a dash ("Pour-", "Cut or
    tear-", "Measure and add-", "continue cooking-"). Usually the step repeats the label ("Measure and
    add-Measure and add 2 tbsp flour ..."), so the label is dropped. Some steps leave the label's verb out
    ("Add-1/2 tsp salt to the pan", "Measure and add-a pinch of salt ..."); there the label is the sentence's
    verb and is kept in front of the step ("Add 1/2 tsp salt to the pan"). A dash further on ("Microwave-safe
    plate") is never a label's.
    """
    match = _ACTION_LABEL.match(description)
    if not match:
        return None, " ".join(description.split())
    label = " ".join(match.group("label").split())
    step = " ".join(match.group("step").split())
    if re.search(rf"(?<![A-Za-z]){re.escape(label)}(?![A-Za-z])", step, flags=re.IGNORECASE):
        return label, step
    return label, f"{label} {step}"


def _captaincook_activities(path: PathLike, result: ReadResult) -> dict[str, str]:
    """Activity id -> activity name, from ``activity_step_description.csv``.

    Step ids are *not* unique across activities there (every recipe numbers its own steps from 1), so the goal
    of a recording is found through its activity id, the part of ``recording_id`` before the underscore.
    """
    by_activity: dict[str, str] = {}
    for _, value, _ in _typed_rows(path, {"activity_idx": _text, "activity_name": _text}, result):
        by_activity.setdefault(value["activity_idx"], value["activity_name"])
    return by_activity


@dataclass
class _ErrorAnnotation:
    """One step occurrence of ``error_annotations.json``: its times (None when not given) and error tags."""

    start: float | None
    end: float | None
    tags: list[str]
    used: bool = False


_TIME_TOLERANCE = 1e-3  # seconds; the two files write the same times, up to float printing


def _optional_time(value: Any, name: str) -> float | None:
    return None if value is None else _float(value, name)


class _CaptainCookErrors:
    """The step occurrences of ``error_annotations.json`` by (recording, step id), in file order.

    A step id can occur several times in one recording (a step redone, or done in two parts), and only some
    occurrences may be wrong, so errors belong to an occurrence, not to a step id: :meth:`take` matches a row
    of ``step_annotations.csv`` to the occurrence with the same times, else to the first one not yet matched.
    """

    def __init__(self) -> None:
        self.occurrences: dict[tuple[str, int], list[_ErrorAnnotation]] = {}
        self.activities: dict[str, str] = {}

    def take(self, recording: str, step_id: int, start: float, end: float) -> list[str]:
        """The error tags of this occurrence ([] when it has none or the file does not list it)."""
        candidates = [a for a in self.occurrences.get((recording, step_id), []) if not a.used]
        if not candidates:
            return []
        same_times = [
            a for a in candidates
            if a.start is not None and a.end is not None
            and abs(a.start - start) <= _TIME_TOLERANCE and abs(a.end - end) <= _TIME_TOLERANCE
        ]
        chosen = (same_times or candidates)[0]
        chosen.used = True
        return chosen.tags


def _captaincook_errors(path: PathLike, result: ReadResult) -> _CaptainCookErrors:
    """Every step occurrence ``error_annotations.json`` lists, with its error tags, and each recording's activity."""
    errors = _CaptainCookErrors()
    for line, _, record in _json_members(path):
        try:
            if not isinstance(record, dict):
                raise ValueError("record is not a JSON object")
            recording = _text(record.get("recording_id"), "recording_id")
            if record.get("activity_id") is not None:
                errors.activities[recording] = str(record["activity_id"]).strip()
            steps = record.get("step_annotations")
            if not isinstance(steps, list):
                raise ValueError("step_annotations is not a list")
            occurrences = []
            for step in steps:
                if not isinstance(step, dict):
                    raise ValueError("a step annotation is not a JSON object")
                tags = step.get("errors") or []
                if not isinstance(tags, list):
                    raise ValueError("errors is not a list")
                step_id = _int(step.get("step_id"), "step_id")
                occurrence = _ErrorAnnotation(
                    _optional_time(step.get("start_time"), "start_time"),
                    _optional_time(step.get("end_time"), "end_time"),
                    [str(tag.get("tag", "?")) if isinstance(tag, dict) else str(tag) for tag in tags],
                )
                occurrences.append(((recording, step_id), occurrence))
        except ValueError as error:
            result.problem(path, line, str(error))
            continue
        for key, occurrence in occurrences:
            errors.occurrences.setdefault(key, []).append(occurrence)
    return errors


def _in_time_order(steps: list[tuple[int, Step]]) -> list[Step]:
    """Steps (with their file positions) ordered by start time; file order breaks ties.

    A skipped step has no time; it stays right after the timed step that precedes it in the file (first when
    none does), so "where it should have been" survives the sort.
    """
    anchored: dict[int | None, list[Step]] = {}  # file position of the timed step before it -> skipped steps
    anchor = None
    for position, step in steps:  # file order
        if step.start is None:
            anchored.setdefault(anchor, []).append(step)
        else:
            anchor = position
    timed = sorted((step.start, position, step) for position, step in steps if step.start is not None)
    ordered = list(anchored.get(None, []))
    for _, position, step in timed:
        ordered.append(step)
        ordered.extend(anchored.get(position, []))
    return ordered


def read_captaincook4d(
    step_annotations: PathLike,
    *,
    step_descriptions: PathLike | None = None,
    error_annotations: PathLike | None = None,
    keep_errors: bool = False,
) -> ReadResult:
    """One recipe per CaptainCook4D recording from ``step_annotations.csv``.

    The goal is the activity name from ``step_descriptions`` (``activity_step_description.csv``; without it the
    goal is ``None``), found by the recording's activity id (``"1_7"`` -> activity 1).

    Steps are ordered by start time, the order the cook performed them; file order only breaks ties. (The file
    is not always in time order: about one recording in five lists a step after one it preceded, which would
    give adjacent-pair training wrong neighbours.) A skipped step has start and end -1, becomes ``start = end =
    None`` with ``meta["skipped"]``, and keeps its place after the step listed before it.

    A step counts as wrong when its ``has_errors`` column is True or ``error_annotations``
    (``error_annotations.json``) lists errors for *that occurrence*: a step id can occur twice in a recording
    with only one occurrence wrong, so the annotation is matched by its times (else by its order among the
    occurrences of that step id). Unless ``keep_errors``, wrong and skipped steps are removed, as the I2G paper
    does, and counted in ``counts``. Each step's action label ("Pour-", "Measure and add-") goes to
    ``meta["verb"]`` and leaves the text (see :func:`_split_captaincook_description`).
    """
    result = ReadResult()
    activity_names = _captaincook_activities(step_descriptions, result) if step_descriptions is not None else {}
    errors = _captaincook_errors(error_annotations, result) if error_annotations is not None else _CaptainCookErrors()

    recordings: dict[str, list[tuple[int, Step]]] = {}
    goals: dict[str, str | None] = {}
    columns = {"recording_id": _text, "step_id": _int, "start_time": _float, "end_time": _float,
               "description": _text, "has_errors": _bool}
    for line, value, _ in _typed_rows(step_annotations, columns, result):
        recording, step_id, start, end, description, has_errors = (value[k] for k in columns)
        skipped = start < 0 or end < 0
        if not skipped and end < start:
            result.problem(step_annotations, line, f"end_time {end} is before start_time {start}")
            continue
        recordings.setdefault(recording, [])
        if recording not in goals:
            activity = errors.activities.get(recording, recording.split("_")[0])
            goals[recording] = activity_names.get(activity)
        tags = errors.take(recording, step_id, start, end)
        wrong = has_errors or bool(tags)
        if not keep_errors and (wrong or skipped):
            result.count("error_steps_dropped" if wrong else "skipped_steps_dropped")
            continue
        verb, text = _split_captaincook_description(description)
        meta: dict[str, Any] = {"step_id": step_id, "has_errors": wrong, "errors": tags, "skipped": skipped}
        if verb:
            meta["verb"] = verb
        step = Step(text=text, start=None if skipped else start, end=None if skipped else end, meta=meta)
        recordings[recording].append((line, step))

    for recording, steps in recordings.items():
        if not steps:
            result.count("recordings_without_steps")
            continue
        ordered = _in_time_order(steps)
        if [id(step) for step in ordered] != [id(step) for _, step in steps]:
            result.count("recordings_reordered_by_time")
        result.recipes.append(Recipe(goal=goals[recording], steps=ordered, source="captaincook4d", id=recording))
    return result


# --- HT-Step -------------------------------------------------------------------------------------------------------


# wikiHow image references left in some paragraphs: "/images/thumb/e/ef/Cook-...-Step-2-preview.jpg/v4-550px-...jpg"
# and wiki markup such as "[[Image:Cook Vegetarian Chili Step 11.jpg}}".
_IMAGE_PATH = re.compile(
    r"\[\[\s*(?:Image|File):[^\]}]*(?:\]\]|}})"  # wiki markup
    r"|(?:https?://\S*)?/images/\S+"  # a wikiHow images path, with or without its host
    r"|\S+\.(?:jpe?g|png|gif|webp)(?:/\S*)?(?=\s|$)",  # a bare image file name
    re.IGNORECASE,
)


def _cleaned(path: PathLike, line: int, result: ReadResult, message: str) -> None:
    """Report a repair (not a skipped row) in ``problems``, so what the reader changed is visible and countable."""
    result.problems.append(Problem(str(path), line, f"cleaned: {message}"))
    logger.info("cleaned %s:%s: %s", path, line, message)


def _clean_htstep_texts(
    path: PathLike, line: int, headline: str, paragraph: str, result: ReadResult
) -> tuple[str, str]:
    """The headline without a stray trailing ";" and the paragraph without wikiHow image paths, each repair reported.

    Image paths would become clauses of nonsense for the text encoder; the ";" is a scraping artefact that the
    headline (shown and encoded on its own) should not carry. The trailing ";" of paragraphs, found on a
    third of them, is dropped by :func:`_join` without a report.
    """
    if headline.endswith(";"):
        headline = headline.rstrip(";").rstrip()
        _cleaned(path, line, result, "removed a trailing ';' from the headline")
    images = _IMAGE_PATH.findall(paragraph)
    if images:
        paragraph = " ".join(_IMAGE_PATH.sub(" ", paragraph).split())
        _cleaned(path, line, result, f"removed {len(images)} wikiHow image path(s) from the paragraph")
    return headline, paragraph


def _htstep_taxonomy(path: PathLike, result: ReadResult) -> dict[int, tuple[str, str, int, Step]]:
    """global_step_index -> (activity, variation, step_index, step) for every usable taxonomy row (texts cleaned)."""
    columns = {"global_step_index": _int, "activity": _text, "step_index": _int, "headline": _text}
    steps: dict[int, tuple[str, str, int, Step]] = {}
    for line, value, row in _typed_rows(path, columns, result, also=("variation", "paragraph")):
        index, activity, step_index, headline = (value[k] for k in columns)
        if index in steps:
            result.problem(path, line, f"global_step_index {index} appears twice")
            continue
        variation = row["variation"].strip() or "none"
        headline, paragraph = _clean_htstep_texts(path, line, headline, row["paragraph"], result)
        if not headline:
            result.problem(path, line, "headline is empty once its trailing ';' is removed")
            continue
        step = Step(
            text=_join(headline, paragraph),
            headline=headline,
            meta={"global_step_index": index, "step_index": step_index},
        )
        steps[index] = (activity, variation, step_index, step)
    return steps


def _article_id(activity: str, variation: str) -> str:
    return activity if variation == "none" else f"{activity} ({variation})"


def read_htstep(taxonomy: PathLike, *, annotations: PathLike | None = None) -> ReadResult:
    """HT-Step recipes from ``taxonomy.csv``, optionally placed in videos by ``annotations.json``.

    Without annotations: one recipe per article (activity and variation; the variation is added to the id
    when it is not "none"), steps ordered by ``step_index``, no times. With annotations: one recipe per video,
    each annotated segment becoming a copy of its taxonomy step with ``start``/``end``, ordered by start time.
    Step text is the headline followed by its paragraph (the trailing ";" some paragraphs carry is dropped).
    wikiHow image paths in a paragraph ("/images/thumb/...-Step-9-preview.jpg/v4-300px-...") and a stray ";"
    ending a headline are removed, and each such repair is listed in ``problems`` as "cleaned: ...".
    """
    result = ReadResult()
    steps = _htstep_taxonomy(taxonomy, result)
    if annotations is None:
        articles: dict[tuple[str, str], list[tuple[int, Step]]] = {}
        for activity, variation, step_index, step in steps.values():
            articles.setdefault((activity, variation), []).append((step_index, step))
        for (activity, variation), members in articles.items():
            ordered = [step for _, step in sorted(members, key=lambda member: member[0])]
            result.recipes.append(
                Recipe(activity, ordered, "htstep", _article_id(activity, variation), {"variation": variation})
            )
        return result

    for line, video, entry in _json_members(annotations):
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("annotations"), list):
                raise ValueError("entry is not an object with an 'annotations' list")
            segments: list[Step] = []
            for annotation in entry["annotations"]:
                index = _int(annotation.get("id"), "step id")
                if index not in steps:
                    raise ValueError(f"step id {index} is not in the taxonomy")
                segment = annotation.get("segment")
                if not isinstance(segment, list) or len(segment) != 2:
                    raise ValueError(f"segment of step {index} is not [start, end]")
                start, end = _float(segment[0], "segment start"), _float(segment[1], "segment end")
                if end < start:
                    raise ValueError(f"segment of step {index} ends before it starts")
                template = steps[index][3]
                segments.append(
                    Step(template.text, template.headline, start=start, end=end, meta=dict(template.meta))
                )
        except (ValueError, AttributeError) as error:
            result.problem(annotations, line, f"video {video}: {error}")
            continue
        if not segments:
            result.count("videos_without_segments")
            continue
        segments.sort(key=lambda step: (step.start, step.end))
        first = steps[segments[0].meta["global_step_index"]]
        meta = {key: entry[key] for key in ("subset", "activity", "variation") if key in entry}
        goal = entry.get("activity") if isinstance(entry.get("activity"), str) else first[0]
        result.recipes.append(Recipe(goal, segments, "htstep", str(video), meta))
    return result


# --- WikiHow (VGSI) ------------------------------------------------------------------------------------------------


def _wikihow_media(img: Any, image_root: Path | None) -> Path | None:
    """Where a step's picture lives: URLs resolve to their file name under ``image_root``, paths stay as given."""
    if not isinstance(img, str) or not img.strip():
        return None
    img = img.strip()
    parsed = urlparse(img)
    if parsed.scheme in ("http", "https"):
        name = PurePosixPath(parsed.path).name
        return image_root / name if image_root is not None and name else None
    return image_root / img if image_root is not None else Path(img)


def read_wikihow(path: PathLike, *, image_root: PathLike | None = None) -> ReadResult:
    """WikiHow articles in the VGSI JSON-lines layout: one recipe per method of each article.

    An article with several methods describes alternative ways to reach the goal, so each method is its own
    ordered recipe (id ``"<file_id>/<method number>"``). Step text is the headline followed by its description.
    ``media`` is the step image: an ``img`` URL maps to its file name under ``image_root`` (the images ship as a
    separate archive), a relative path is taken under ``image_root`` (or as given without one).
    """
    result = ReadResult()
    root = Path(image_root) if image_root is not None else None
    for line, raw in enumerate(_read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            article = json.loads(raw)
        except json.JSONDecodeError as error:
            result.problem(path, line, f"is not valid JSON ({error.msg})")
            continue
        try:
            if not isinstance(article, dict):
                raise ValueError("line is not a JSON object")
            file_id = str(article.get("file_id") or f"line{line}")
            goal = _text(article.get("goal"), "goal")
            methods = article.get("methods")
            if not isinstance(methods, list) or not methods:
                raise ValueError("methods is missing or empty")
            recipes = []
            for number, method in enumerate(methods, start=1):
                if not isinstance(method, dict) or not isinstance(method.get("steps"), list):
                    raise ValueError(f"method {number} has no list of steps")
                steps = []
                for item in method["steps"]:
                    if not isinstance(item, dict):
                        raise ValueError(f"a step of method {number} is not a JSON object")
                    headline = _text(item.get("headline"), f"a headline in method {number}")
                    description = item.get("description") or ""
                    meta = {key: item[key] for key in ("step_id", "img", "img_license") if key in item}
                    steps.append(
                        Step(
                            _join(headline, str(description)),
                            headline,
                            media=_wikihow_media(item.get("img"), root),
                            meta=meta,
                        )
                    )
                if not steps:
                    result.count("methods_without_steps")
                    continue
                meta = {
                    "method": method.get("name"),
                    "goal_description": article.get("goal_description"),
                    "category_hierarchy": article.get("category_hierarchy"),
                }
                recipes.append(Recipe(goal, steps, "wikihow", f"{file_id}/{number}", meta))
        except ValueError as error:
            result.problem(path, line, str(error))
            continue
        result.recipes.extend(recipes)
    return result


# --- the project's own JSON layout ----------------------------------------------------------------------------------


def read_recipes_json(path: PathLike, *, image_root: PathLike | None = None) -> ReadResult:
    """Recipes written as JSON: ``[{"id"?, "goal", "steps": [text | {"text", "image"?}], "split"?}, ...]``.

    The list may also sit under a ``"recipes"`` key. This is the evaluation format of ``python -m eval.generate``
    (and of any hand-made set): ``split`` ("train", "val", "test") goes to ``meta["split"]``; step images are
    taken relative to ``image_root`` (or to the file's folder). A recipe without a goal or steps is a problem.
    """
    result = ReadResult()
    root = Path(image_root) if image_root is not None else Path(path).parent
    members = list(_json_members(path))
    if members and members[0][1] is not None:  # an object: only {"recipes": [...]} is accepted
        found = [value for _, key, value in members if key == "recipes"]
        if not found or not isinstance(found[0], list):
            raise InvalidInputError(f"The recipes file {path} holds neither a list nor a \"recipes\" list.")
        members = [(None, None, value) for value in found[0]]  # lines inside the object are not tracked
    for number, (line, _, item) in enumerate(members, start=1):
        try:
            if not isinstance(item, dict):
                raise ValueError("recipe is not a JSON object")
            goal = _text(item.get("goal"), "goal")
            raw_steps = item.get("steps")
            if not isinstance(raw_steps, list) or not raw_steps:
                raise ValueError("steps is missing or empty")
            steps = []
            for raw in raw_steps:
                if isinstance(raw, str):
                    steps.append(Step(_text(raw, "a step")))
                elif isinstance(raw, dict):
                    image = raw.get("image")
                    media = root / image if isinstance(image, str) and image.strip() else None
                    steps.append(Step(_text(raw.get("text"), "a step's text"), media=media))
                else:
                    raise ValueError("a step is neither a text nor an object with a text")
            meta = {"split": str(item["split"])} if item.get("split") is not None else {}
            recipe_id = str(item.get("id", number))
        except ValueError as error:
            result.problem(path, line, f"recipe {number}: {error}")
            continue
        result.recipes.append(Recipe(goal, steps, "json", recipe_id, meta))
    return result


# --- EPIC-KITCHENS-100 ---------------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"^(\d+):([0-5]?\d):(\d+(?:\.\d+)?)$")


def _seconds(value: str, name: str) -> float:
    """``"00:05:27.28"`` -> 327.28 (EPIC writes HH:MM:SS.ff)."""
    match = _TIMESTAMP.match(value.strip())
    if not match:
        raise ValueError(f"{name} {value!r} is not HH:MM:SS.ff")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def read_epic100(path: PathLike) -> ReadResult:
    """EPIC-KITCHENS-100 narrations grouped into one recipe per video, ordered by start time.

    EPIC is unscripted, so a video has no goal (``goal`` is ``None``) and its "steps" are its narrations
    ("take plate", "wash cloth"), which may overlap in time. ShowMe treats each narration as its own sample (first
    frame + narration -> last frame): iterate ``recipe.steps``. Each step keeps ``narration_id``, the frame span
    (``start_frame``/``stop_frame``, 60 fps in EPIC-100), verb and noun (with their classes) in ``meta``.
    """
    result = ReadResult()
    columns = (
        "narration_id",
        "video_id",
        "start_timestamp",
        "stop_timestamp",
        "start_frame",
        "stop_frame",
        "narration",
    )
    videos: dict[str, list[Step]] = {}
    participants: dict[str, str] = {}
    for line, row in _csv_rows(path, columns, result):
        try:
            video = _text(row["video_id"], "video_id")
            narration_id = _text(row["narration_id"], "narration_id")
            narration = _text(row["narration"], "narration")
            start = _seconds(row["start_timestamp"], "start_timestamp")
            end = _seconds(row["stop_timestamp"], "stop_timestamp")
            start_frame = _int(row["start_frame"], "start_frame")
            stop_frame = _int(row["stop_frame"], "stop_frame")
            if end < start or stop_frame < start_frame:
                raise ValueError("the narration stops before it starts")
            meta: dict[str, Any] = {
                "narration_id": narration_id,
                "start_frame": start_frame,
                "stop_frame": stop_frame,
            }
            for key in ("verb", "noun"):
                if row.get(key):
                    meta[key] = row[key].strip()
            for key in ("verb_class", "noun_class"):
                if row.get(key, "").strip():
                    meta[key] = _int(row[key], key)
            if row.get("all_nouns", "").strip():
                try:
                    meta["all_nouns"] = list(ast.literal_eval(row["all_nouns"]))
                except (ValueError, SyntaxError, TypeError):
                    raise ValueError(f"all_nouns {row['all_nouns']!r} is not a list") from None
        except ValueError as error:
            result.problem(path, line, str(error))
            continue
        videos.setdefault(video, []).append(Step(narration, start=start, end=end, meta=meta))
        if row.get("participant_id"):
            participants[video] = row["participant_id"].strip()

    for video, steps in videos.items():
        steps.sort(key=lambda step: (step.start, step.meta["start_frame"], step.end))
        meta = {"participant_id": participants[video]} if video in participants else {}
        result.recipes.append(Recipe(None, steps, "epic100", video, meta))
    return result


# --- Something-Something v2 ----------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\[[^\[\]]*\]")


def template_label(template: str) -> str:
    """A ``train.json`` template as ``labels.json`` spells it: brackets removed.

    ``"Putting [number of] [something] onto [something]"`` -> ``"Putting number of something onto something"``.
    """
    return " ".join(template.replace("[", "").replace("]", "").split())


def fill_template(template: str, placeholders: Sequence[str]) -> str:
    """The template with each ``[...]`` replaced, in order, by its placeholder.

    ``fill_template("Putting [something] into [something]", ["a pen", "a cup"])`` -> ``"Putting a pen into a
    cup"``; a template that opens a sentence with ``[Something]`` gets a capitalised object.
    """
    slots = _PLACEHOLDER.findall(template)
    if len(slots) != len(placeholders):
        raise ValueError(f"template has {len(slots)} placeholders but {len(placeholders)} were given")
    words = iter(placeholders)

    def fill(match: re.Match[str]) -> str:
        word = " ".join(str(next(words)).split())
        if match.start() == 0 and match.group(0)[1:2].isupper():
            word = word[:1].upper() + word[1:]
        return word

    return _PLACEHOLDER.sub(fill, template)


def _ssv2_labels(path: PathLike) -> dict[str, int]:
    labels: dict[str, int] = {}
    for line, name, value in _json_members(path):
        try:
            labels[" ".join(str(name).split())] = int(value)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"The SSv2 labels file {path} maps {name!r} to {value!r} on line {line}, not to a class number."
            ) from None
    if not labels:
        raise InvalidInputError(f"The SSv2 labels file {path} is empty or not an object of template -> class.")
    return labels


def read_ssv2(
    samples: PathLike,
    *,
    labels: PathLike | None = None,
    videos_root: PathLike | None = None,
    video_suffix: str = ".webm",
) -> ReadResult:
    """Something-Something v2 clips (``train.json`` / ``validation.json``) as single-step records.

    Each clip becomes ``Recipe(goal=None, steps=[Step(instruction)], id=<clip id>)``, the instruction being the
    template filled with the clip's placeholders ("Putting a pen into a cup"). ``meta`` keeps ``template``
    (bracketed), ``label`` (template as in ``labels.json``, what :mod:`.curation` filters on), ``placeholders``
    and, given ``labels``, ``class_id``; a template missing from ``labels`` is a problem. ``media`` is
    ``videos_root/<id><video_suffix>`` when ``videos_root`` is given. Clips without a template (the unlabelled
    test split) are reported as problems.
    """
    result = ReadResult()
    classes = _ssv2_labels(labels) if labels is not None else None
    root = Path(videos_root) if videos_root is not None else None
    for line, _, item in _json_members(samples):
        try:
            if not isinstance(item, dict):
                raise ValueError("record is not a JSON object")
            clip = str(item.get("id", "")).strip()
            if not clip:
                raise ValueError("record has no id")
            template = _text(item.get("template"), f"template of clip {clip}")
            placeholders = item.get("placeholders", [])
            if not isinstance(placeholders, list):
                raise ValueError(f"placeholders of clip {clip} are not a list")
            instruction = fill_template(template, placeholders)
            label = template_label(template)
            meta: dict[str, Any] = {"template": template, "label": label, "placeholders": placeholders}
            if classes is not None:
                if label not in classes:
                    raise ValueError(f"template {label!r} of clip {clip} is not in the labels file")
                meta["class_id"] = classes[label]
        except ValueError as error:
            result.problem(samples, line, str(error))
            continue
        media = root / f"{clip}{video_suffix}" if root is not None else None
        result.recipes.append(Recipe(None, [Step(instruction, media=media)], "ssv2", clip, meta))
    return result


# --- Ego4D ---------------------------------------------------------------------------------------------------------

_CAMERA_WEARER = re.compile(r"^\s*#c\s+c\b\s*", re.IGNORECASE)
_UNSURE = re.compile(r"#unsure", re.IGNORECASE)


def _ego4d_narration(item: Any, name: str) -> tuple[str, float, int | None, str | None]:
    """(raw text, seconds, frame or None, annotation uid or None) of one narration, or ValueError saying why not."""
    if not isinstance(item, dict):
        raise ValueError(f"{name} is not a JSON object")
    text = _text(item.get("narration_text"), f"narration_text of {name}")
    seconds = item.get("timestamp_sec")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"timestamp_sec of {name} is missing or not a number")
    seconds = _float(seconds, f"timestamp_sec of {name}")
    if seconds < 0:
        raise ValueError(f"timestamp_sec of {name} is negative")
    frame = item.get("timestamp_frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
        raise ValueError(f"timestamp_frame of {name} is not a whole number from 0")
    uid = item.get("annotation_uid")
    return text, seconds, frame, uid if isinstance(uid, str) else None


def read_ego4d(path: PathLike, *, passes: Sequence[str] = ("narration_pass_1",)) -> ReadResult:
    """Ego4D's ``narration.json`` (``{video_uid: {"narration_pass_1": {"narrations": [...]}, ...}}``) as one
    recipe per video, a step per narration of the camera wearer, ordered by time.

    Each narration is ``{"timestamp_sec", "timestamp_frame", "narration_text", "annotation_uid"}``; its text
    ("#C C cuts the onion") becomes the instruction without the "#C C" tag ("cuts the onion"). Narrations of other
    people ("#O ...") and those the annotator was unsure of ("#unsure") are left out on purpose (``counts``), as
    are videos without narrations (redacted ones). A malformed narration is a problem reported with the line its
    video starts on and its position ("narration 3 of <uid> in narration_pass_1: ..."). ``meta`` of a step keeps
    ``narration_id`` (``<uid>_<pass>_<index>``), ``timestamp_sec``, ``timestamp_frame`` (30 fps), ``pass``,
    ``annotation_uid`` and the raw ``narration_text``; :func:`~.clips.ego4d_clips` turns them into clips.
    """
    result = ReadResult()
    for line, video, record in _json_members(path):
        if video is None:
            raise InvalidInputError(f"The Ego4D file {path} is a list; narration.json maps each video_uid to its "
                                    "narrations.")
        if not isinstance(record, dict):
            result.problem(path, line, f"video {video} is not a JSON object")
            continue
        steps: list[Step] = []
        for name in passes:
            block = record.get(name)
            if block is None:
                continue
            narrations = block.get("narrations") if isinstance(block, dict) else None
            if not isinstance(narrations, list):
                result.problem(path, line, f"{name} of video {video} has no list of narrations")
                continue
            for index, item in enumerate(narrations):
                where = f"narration {index + 1} of {video} in {name}"
                try:
                    raw, seconds, frame, uid = _ego4d_narration(item, where)
                except ValueError as error:
                    result.problem(path, line, str(error))
                    continue
                if _UNSURE.search(raw):
                    result.count("unsure_narrations")
                    continue
                if not _CAMERA_WEARER.match(raw):
                    result.count("other_person_narrations")
                    continue
                text = " ".join(_CAMERA_WEARER.sub("", raw, count=1).split()).rstrip(" .")
                if not text:
                    result.problem(path, line, f"{where} has no text after the #C C tag")
                    continue
                meta: dict[str, Any] = {"narration_id": f"{video}_{name}_{index}", "timestamp_sec": seconds,
                                        "timestamp_frame": frame, "pass": name, "narration_text": raw}
                if uid is not None:
                    meta["annotation_uid"] = uid
                steps.append(Step(text, start=seconds, end=seconds, meta=meta))
        if not steps:
            result.count("videos_without_narrations")
            continue
        steps.sort(key=lambda step: step.start)
        result.recipes.append(Recipe(None, steps, "ego4d", video, {"status": record.get("status")}))
    return result
