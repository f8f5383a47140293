"""Audit the dataset readers and the clause splitter on whole annotation files.

Reads each annotation file you point it at with the library's reader, then splits every step text into clauses
with each clause backend, and prints counts that show whether the content came out right:

- per file: recipes, steps, rows left out on purpose, problems by kind (a skipped row, or a "cleaned:" repair),
  recipes and steps out of time order (a step that starts before the step listed before it);
- per clause backend: clauses, cuts, cuts right after a known abbreviation ("4 tbsp." | "of butter"), clauses
  with path-like text (image paths, URLs), and the share of clauses that start, after a cut, with a lower-case
  word, a digit or "(" (a hint of a cut inside a sentence; cuts before "then ..." or "and ..." count too).

Examples::

    python scripts/audit_readers.py --samples
    python scripts/audit_readers.py --captaincook4d annotation_csv/step_annotations.csv \\
        --captaincook4d-descriptions annotation_csv/activity_step_description.csv \\
        --captaincook4d-errors annotation_json/error_annotations.json --htstep data/taxonomy.csv

Nothing is downloaded; a backend that cannot be loaded is reported and skipped.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "samples"

PATH_LIKE = re.compile(
    r"/images/|\[\[\s*(?:Image|File):|https?://|www\.|\S\.(?:jpe?g|png|gif|webp|svg)\b|(?:/[\w.%-]+){3,}",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def problem_kind(message: str) -> str:
    """A problem message with its numbers and quoted values replaced, so messages of one kind count together."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", message))


@dataclass
class FileReport:
    """What one reader made of one annotation file."""

    reader: str
    path: str
    recipes: int = 0
    steps: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: Counter = field(default_factory=Counter)
    recipes_out_of_order: int = 0
    steps_out_of_order: int = 0
    texts: list[str] = field(default_factory=list)


def audit_file(reader: str, path: str, result) -> FileReport:
    """Counts of one :class:`~showme_i2g.data.ReadResult`."""
    report = FileReport(reader, path, recipes=len(result.recipes), counts=dict(result.counts))
    report.problems.update(problem_kind(problem.message) for problem in result.problems)
    for recipe in result.recipes:
        report.steps += len(recipe.steps)
        report.texts.extend(step.text for step in recipe.steps)
        starts = [step.start for step in recipe.steps if step.start is not None]
        late = sum(later < earlier for earlier, later in zip(starts, starts[1:]))
        report.steps_out_of_order += late
        report.recipes_out_of_order += late > 0
    return report


@dataclass
class ClauseReport:
    """What one clause backend made of all step texts."""

    backend: str
    texts: int = 0
    clauses: int = 0
    cuts: int = 0
    abbreviation_cuts: int = 0
    path_like: int = 0
    continued: int = 0  # clauses after a cut that start with a lower-case word, a digit or "("
    unmarked: int = 0  # ... of which the first word is not a connective ("and", "then"): likely mid-sentence
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)


def audit_clauses(backend: str, texts: Sequence[str], splitter) -> ClauseReport:
    from showme_i2g.text.clauses import CONNECTIVES, is_abbreviation_cut

    report = ClauseReport(backend, texts=len(texts))
    began = time.perf_counter()
    for text in texts:
        clauses = splitter(text)
        report.clauses += len(clauses)
        report.path_like += sum(PATH_LIKE.search(clause) is not None for clause in clauses)
        for before, after in zip(clauses, clauses[1:]):
            report.cuts += 1
            if is_abbreviation_cut(before, after):
                report.abbreviation_cuts += 1
                if len(report.examples) < 5:
                    report.examples.append(f"{before[-40:]!r} | {after[:40]!r}")
            if after[:1].islower() or after[:1].isdigit() or after[:1] == "(":
                report.continued += 1
                report.unmarked += after.split()[0].lower() not in CONNECTIVES
    report.seconds = time.perf_counter() - began
    return report


def _read(reader: str, path: str, args: argparse.Namespace):
    from showme_i2g import data

    if reader == "captaincook4d":
        return data.read_captaincook4d(
            path, step_descriptions=args.captaincook4d_descriptions, error_annotations=args.captaincook4d_errors
        )
    if reader == "htstep":
        return data.read_htstep(path)
    if reader == "epic100":
        return data.read_epic100(path)
    raise ValueError(reader)


def _sample_runs() -> list[tuple[str, str, dict[str, str | None]]]:
    cc4d = SAMPLES / "captaincook4d"
    return [
        ("captaincook4d", str(cc4d / "step_annotations.csv"),
         {"captaincook4d_descriptions": str(cc4d / "activity_step_description.csv"),
          "captaincook4d_errors": str(cc4d / "error_annotations.sample.json")}),
        ("captaincook4d", str(cc4d / "step_annotations.patterns.csv"),
         {"captaincook4d_descriptions": str(cc4d / "activity_step_description.patterns.csv"),
          "captaincook4d_errors": str(cc4d / "error_annotations.patterns.json")}),
        ("htstep", str(SAMPLES / "htstep" / "taxonomy.sample.csv"), {}),
        ("htstep", str(SAMPLES / "htstep" / "taxonomy.patterns.csv"), {}),
        ("epic100", str(SAMPLES / "epic100" / "EPIC_100_validation.sample.csv"), {}),
    ]


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def print_file_report(report: FileReport) -> None:
    print(f"{report.reader}: {_relative(report.path)}")
    print(f"  recipes {report.recipes}, steps {report.steps}")
    if report.counts:
        print("  counts: " + ", ".join(f"{key} {value}" for key, value in sorted(report.counts.items())))
    total = sum(report.problems.values())
    print(f"  problems {total}")
    for kind, number in sorted(report.problems.items(), key=lambda item: (-item[1], item[0])):
        print(f"    {number:6d}  {kind}")
    print(f"  out of time order: {report.recipes_out_of_order} recipes, {report.steps_out_of_order} steps")


def print_clause_reports(reports: Sequence[ClauseReport], texts: int) -> None:
    print(f"clauses of all {texts} step texts above")
    print(f"  {'backend':<12}{'clauses':>8}{'cuts':>7}{'after abbrev.':>15}{'path-like':>11}"
          f"{'cut, then lower/digit/(':>26}{'not a connective':>22}")
    for r in reports:
        share = f"{r.continued} ({100 * r.continued / r.cuts:.1f} %)" if r.cuts else "0"
        unmarked = f"{r.unmarked} ({100 * r.unmarked / r.cuts:.1f} %)" if r.cuts else "0"
        print(f"  {r.backend:<12}{r.clauses:>8}{r.cuts:>7}{r.abbreviation_cuts:>15}{r.path_like:>11}{share:>26}"
              f"{unmarked:>22}   [{r.seconds:.1f} s]")
        for example in r.examples:
            print(f"      after an abbreviation: {example}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring.")
    parser.add_argument("--samples", action="store_true", help="audit the samples shipped in tests/data/samples")
    parser.add_argument("--captaincook4d", action="append", default=[], metavar="CSV",
                        help="CaptainCook4D step_annotations.csv (repeatable)")
    parser.add_argument("--captaincook4d-descriptions", metavar="CSV",
                        help="CaptainCook4D activity_step_description.csv (the goals)")
    parser.add_argument("--captaincook4d-errors", metavar="JSON", help="CaptainCook4D error_annotations.json")
    parser.add_argument("--htstep", action="append", default=[], metavar="CSV",
                        help="HT-Step taxonomy.csv (repeatable)")
    parser.add_argument("--epic100", action="append", default=[], metavar="CSV",
                        help="EPIC-KITCHENS-100 narration CSV (repeatable)")
    parser.add_argument("--backends", nargs="+", default=None, metavar="NAME",
                        help="clause backends to audit (default: every backend that loads here)")
    parser.add_argument("--no-clauses", action="store_true", help="audit the readers only")
    args = parser.parse_args(argv)

    runs: list[tuple[str, str, dict[str, str | None]]] = []
    if args.samples:
        runs += _sample_runs()
    runs += [("captaincook4d", path, {}) for path in args.captaincook4d]
    runs += [("htstep", path, {}) for path in args.htstep]
    runs += [("epic100", path, {}) for path in args.epic100]
    if not runs:
        parser.error("give --samples or at least one annotation file")

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:  # counting the tokens of a long text makes transformers warn about its 77-token limit
        import transformers

        transformers.logging.set_verbosity_error()
    except ImportError:
        pass
    from showme_i2g.errors import ShowMeError
    from showme_i2g.text.clauses import CLAUSE_BACKENDS, ClauseSplitter, available_backends

    texts: list[str] = []
    for reader, path, overrides in runs:
        namespace = argparse.Namespace(**{**vars(args), **overrides})
        try:
            result = _read(reader, path, namespace)
        except ShowMeError as error:
            print(f"{reader}: {path}\n  cannot be read: {error}")
            return 2
        report = audit_file(reader, path, result)
        print_file_report(report)
        texts += report.texts
    if args.no_clauses:
        return 0

    backends = args.backends or available_backends()
    clause_reports = []
    for backend in backends:
        if backend not in CLAUSE_BACKENDS:
            parser.error(f"unknown backend {backend!r}; choose from {', '.join(CLAUSE_BACKENDS)}")
        try:
            splitter = ClauseSplitter(backend)
        except ShowMeError as error:
            print(f"clause backend {backend}: skipped, {error}")
            continue
        clause_reports.append(audit_clauses(backend, texts, splitter))
    print_clause_reports(clause_reports, len(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
