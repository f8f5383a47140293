"""The two curation filters ShowMe applies before training (ShowMe §4 "Datasets", appendix A.1-A.2).

**SSv2 templates.** ShowMe learns first frame + instruction -> final frame, so a clip is only useful when its last
frame shows what the instruction did. The paper drops templates "without distinct human actions or meaningful
object state changes" ("holding", "showing", "fail", "nothing happens", "pretending") and "potentially harmful"
ones ("hitting", "throwing"), keeping 112 of 174 after a manual review whose list is not published. This module
makes that review a documented rule list (:data:`SSV2_RULES`), each rule with its reason: the paper's named keywords,
plus four rules for the same criterion (only the camera moves; nothing is moved; the action is undone within the
clip; the object only spins). Read against the criterion rather than tuned to the paper's count, they keep 109 of
the 174 templates (:data:`SSV2_TEMPLATES`) and drop 65; three more drops than the paper's 62, all templates whose
clip ends as it began ("Poking a stack of something without the stack collapsing", "Lifting something up
completely without letting it drop down"), and one keep it would drop by keyword although it shows a change
("Trying to pour something into something, but missing so it spills next to it"). ``docs/ssv2_templates.md``
lists every dropped template with its rule (:func:`ssv2_template_table`); pass your own rules to change them.

**EPIC-KITCHENS final frame.** Narration end frames often miss the end of the action or follow a scene cut. Each of
the clip's last 8 (downsampled) frames is scored by CLIP(text, frame) x DINO(first frame, frame) -- semantic match
times visual continuity -- and the best frame is the target if its score exceeds 0.1 (:func:`select_final_frame`).
The similarity networks are plugged in as callables, so the rule is tested without any weights.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import InvalidInputError
from .readers import template_label
from .records import Recipe

__all__ = [
    "SSV2_RULES",
    "SSV2_TEMPLATES",
    "TemplateDecision",
    "TemplateRule",
    "curate_ssv2",
    "final_frame_scores",
    "judge_template",
    "select_final_frame",
    "split_templates",
    "ssv2_template_table",
]

Frame = TypeVar("Frame")


# --- SSv2 ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRule:
    """Drop every template whose text matches ``pattern`` (case-insensitive), for ``reason``."""

    name: str
    pattern: str
    reason: str

    def matches(self, template: str) -> bool:
        return re.search(self.pattern, template, flags=re.IGNORECASE) is not None


# The criterion (ShowMe A.1): a clip trains "first frame + instruction -> last frame" only if a person's action
# leaves a visible change of the objects' state in the last frame, and the action is not harmful. Each rule below
# drops templates that fail it for one reason; the first matching rule names the reason. Read against all 174
# templates (docs/ssv2_templates.md lists every dropped one with its rule), these rules drop 65 and keep 109.
SSV2_RULES: tuple[TemplateRule, ...] = (
    # The paper's own keywords (ShowMe appendix A.1).
    TemplateRule("pretending", r"\bpretend",
                 "a pretended action changes nothing: the last frame shows the first frame's state (paper)"),
    TemplateRule(
        "failing",
        r"^(?!.*\bspills?\b).*(?:\bfail|\btrying\b)",
        "a failed attempt: the intended change never happens, so the clip ends as it began (paper: 'fail'); a "
        "failed pour that spills is kept, as the spill is a visible change",
    ),
    TemplateRule("nothing happens", r"nothing happens", "no state change by definition (paper)"),
    TemplateRule("holding", r"\bholding\b", "a static pose: the object is held, not changed (paper)"),
    TemplateRule("showing", r"\bshowing\b", "an object is presented to the camera, not changed (paper)"),
    TemplateRule("harm", r"\bhitting\b|\bthrowing\b", "a potentially harmful action (paper: 'hitting', 'throwing')"),
    # The same criterion, for templates the paper does not name.
    TemplateRule("camera motion", r"with your camera|turning the camera",
                 "only the viewpoint moves; no object changes state"),
    TemplateRule("no movement", r"without moving|doesn't or almost doesn't move",
                 "the object is touched but not moved: no visible change"),
    TemplateRule(
        "undone",
        r"then letting it drop down|without letting it drop down|pulling it right out|rolls back down"
        r"|not enough for it to slide|slightly so it doesn't fall down|without the stack collapsing",
        "the action is reversed or has no effect within the clip (lifted and put back, plugged and pulled out, "
        "a stack that stands), so the last frame shows the first frame's state",
    ),
    TemplateRule("spinning", r"\bspin",
                 "a spun object ends where and as it began (or is still a blur): no visible state change"),
)


@dataclass(frozen=True)
class TemplateDecision:
    """Whether a template is kept; ``rule``/``reason`` name the first rule that dropped it (None when kept)."""

    template: str
    kept: bool
    rule: str | None = None
    reason: str | None = None


def judge_template(template: str, rules: Sequence[TemplateRule] = SSV2_RULES) -> TemplateDecision:
    """Keep or drop one template (bracketed ``train.json`` form or plain ``labels.json`` form)."""
    label = template_label(template)
    for rule in rules:
        if rule.matches(label):
            return TemplateDecision(label, False, rule.name, rule.reason)
    return TemplateDecision(label, True)


def split_templates(
    templates: Iterable[str], rules: Sequence[TemplateRule] = SSV2_RULES
) -> tuple[list[TemplateDecision], list[TemplateDecision]]:
    """``(kept, dropped)`` decisions for each template, in input order."""
    decisions = [judge_template(template, rules) for template in templates]
    return [d for d in decisions if d.kept], [d for d in decisions if not d.kept]


def curate_ssv2(
    recipes: Iterable[Recipe], rules: Sequence[TemplateRule] = SSV2_RULES
) -> tuple[list[Recipe], dict[str, int]]:
    """The SSv2 records whose template survives ``rules``, and how many clips each rule removed.

    Records come from :func:`~.readers.read_ssv2` (their ``meta["label"]`` holds the template).
    """
    kept: list[Recipe] = []
    removed: dict[str, int] = {}
    cache: dict[str, TemplateDecision] = {}
    for recipe in recipes:
        label = recipe.meta.get("label") or recipe.meta.get("template")
        if not isinstance(label, str):
            raise InvalidInputError(f"Record {recipe.id} has no SSv2 template; read it with read_ssv2.")
        decision = cache.get(label) or cache.setdefault(label, judge_template(label, rules))
        if decision.kept:
            kept.append(recipe)
        else:
            removed[decision.rule or "?"] = removed.get(decision.rule or "?", 0) + 1
    return kept, removed


def ssv2_template_table(templates: Sequence[str] | None = None, rules: Sequence[TemplateRule] = SSV2_RULES) -> str:
    """Markdown listing every dropped template with the rule that dropped it, then the rules and their reasons.

    ``docs/ssv2_templates.md`` is this text for the 174 templates (a test keeps the two equal).
    """
    templates = SSV2_TEMPLATES if templates is None else templates
    kept, dropped = split_templates(templates, rules)
    lines = [
        "# SSv2 templates dropped by the curation rules",
        "",
        "Generated by `showme_i2g.data.curation.ssv2_template_table()`; the criterion (ShowMe, appendix A.1): a clip",
        "is kept when a person's action leaves a visible change of the objects' state in its last frame and the",
        f"action is not harmful. {len(kept)} of {len(templates)} templates are kept and {len(dropped)} dropped.",
        "",
        "| rule | reason |",
        "|---|---|",
    ]
    lines += [f"| {rule.name} | {rule.reason} |" for rule in rules]
    lines += ["", "| class id | dropped template | rule |", "|---|---|---|"]
    index = {template: number for number, template in enumerate(templates)}
    lines += [f"| {index[d.template]} | {d.template} | {d.rule} |" for d in dropped]
    return "\n".join(lines) + "\n"


# The 174 SSv2 templates, as in labels.json (class ids 0-173 in this order).
SSV2_TEMPLATES: tuple[str, ...] = (
    "Approaching something with your camera",
    "Attaching something to something",
    "Bending something so that it deforms",
    "Bending something until it breaks",
    "Burying something in something",
    "Closing something",
    "Covering something with something",
    "Digging something out of something",
    "Dropping something behind something",
    "Dropping something in front of something",
    "Dropping something into something",
    "Dropping something next to something",
    "Dropping something onto something",
    "Failing to put something into something because something does not fit",
    "Folding something",
    "Hitting something with something",
    "Holding something",
    "Holding something behind something",
    "Holding something in front of something",
    "Holding something next to something",
    "Holding something over something",
    "Laying something on the table on its side, not upright",
    "Letting something roll along a flat surface",
    "Letting something roll down a slanted surface",
    "Letting something roll up a slanted surface, so it rolls back down",
    "Lifting a surface with something on it but not enough for it to slide down",
    "Lifting a surface with something on it until it starts sliding down",
    "Lifting something up completely without letting it drop down",
    "Lifting something up completely, then letting it drop down",
    "Lifting something with something on it",
    "Lifting up one end of something without letting it drop down",
    "Lifting up one end of something, then letting it drop down",
    "Moving away from something with your camera",
    "Moving part of something",
    "Moving something across a surface until it falls down",
    "Moving something across a surface without it falling down",
    "Moving something and something away from each other",
    "Moving something and something closer to each other",
    "Moving something and something so they collide with each other",
    "Moving something and something so they pass each other",
    "Moving something away from something",
    "Moving something away from the camera",
    "Moving something closer to something",
    "Moving something down",
    "Moving something towards the camera",
    "Moving something up",
    "Opening something",
    "Picking something up",
    "Piling something up",
    "Plugging something into something",
    "Plugging something into something but pulling it right out as you remove your hand",
    "Poking a hole into some substance",
    "Poking a hole into something soft",
    "Poking a stack of something so the stack collapses",
    "Poking a stack of something without the stack collapsing",
    "Poking something so it slightly moves",
    "Poking something so lightly that it doesn't or almost doesn't move",
    "Poking something so that it falls over",
    "Poking something so that it spins around",
    "Pouring something into something",
    "Pouring something into something until it overflows",
    "Pouring something onto something",
    "Pouring something out of something",
    "Pretending or failing to wipe something off of something",
    "Pretending or trying and failing to twist something",
    "Pretending to be tearing something that is not tearable",
    "Pretending to close something without actually closing it",
    "Pretending to open something without actually opening it",
    "Pretending to pick something up",
    "Pretending to poke something",
    "Pretending to pour something out of something, but something is empty",
    "Pretending to put something behind something",
    "Pretending to put something into something",
    "Pretending to put something next to something",
    "Pretending to put something on a surface",
    "Pretending to put something onto something",
    "Pretending to put something underneath something",
    "Pretending to scoop something up with something",
    "Pretending to spread air onto something",
    "Pretending to sprinkle air onto something",
    "Pretending to squeeze something",
    "Pretending to take something from somewhere",
    "Pretending to take something out of something",
    "Pretending to throw something",
    "Pretending to turn something upside down",
    "Pulling something from behind of something",
    "Pulling something from left to right",
    "Pulling something from right to left",
    "Pulling something onto something",
    "Pulling something out of something",
    "Pulling two ends of something but nothing happens",
    "Pulling two ends of something so that it gets stretched",
    "Pulling two ends of something so that it separates into two pieces",
    "Pushing something from left to right",
    "Pushing something from right to left",
    "Pushing something off of something",
    "Pushing something onto something",
    "Pushing something so it spins",
    "Pushing something so that it almost falls off but doesn't",
    "Pushing something so that it falls off the table",
    "Pushing something so that it slightly moves",
    "Pushing something with something",
    "Putting number of something onto something",
    "Putting something and something on the table",
    "Putting something behind something",
    "Putting something in front of something",
    "Putting something into something",
    "Putting something next to something",
    "Putting something on a flat surface without letting it roll",
    "Putting something on a surface",
    "Putting something on the edge of something so it is not supported and falls down",
    "Putting something onto a slanted surface but it doesn't glide down",
    "Putting something onto something",
    "Putting something onto something else that cannot support it so it falls down",
    "Putting something similar to other things that are already on the table",
    "Putting something that can't roll onto a slanted surface, so it slides down",
    "Putting something that can't roll onto a slanted surface, so it stays where it is",
    "Putting something that cannot actually stand upright upright on the table, so it falls on its side",
    "Putting something underneath something",
    "Putting something upright on the table",
    "Putting something, something and something on the table",
    "Removing something, revealing something behind",
    "Rolling something on a flat surface",
    "Scooping something up with something",
    "Showing a photo of something to the camera",
    "Showing something behind something",
    "Showing something next to something",
    "Showing something on top of something",
    "Showing something to the camera",
    "Showing that something is empty",
    "Showing that something is inside something",
    "Something being deflected from something",
    "Something colliding with something and both are being deflected",
    "Something colliding with something and both come to a halt",
    "Something falling like a feather or paper",
    "Something falling like a rock",
    "Spilling something behind something",
    "Spilling something next to something",
    "Spilling something onto something",
    "Spinning something so it continues spinning",
    "Spinning something that quickly stops spinning",
    "Spreading something onto something",
    "Sprinkling something onto something",
    "Squeezing something",
    "Stacking number of something",
    "Stuffing something into something",
    "Taking one of many similar things on the table",
    "Taking something from somewhere",
    "Taking something out of something",
    "Tearing something into two pieces",
    "Tearing something just a little bit",
    "Throwing something",
    "Throwing something against something",
    "Throwing something in the air and catching it",
    "Throwing something in the air and letting it fall",
    "Throwing something onto a surface",
    "Tilting something with something on it slightly so it doesn't fall down",
    "Tilting something with something on it until it falls off",
    "Tipping something over",
    "Tipping something with something in it over, so something in it falls out",
    "Touching (without moving) part of something",
    "Trying but failing to attach something to something because it doesn't stick",
    "Trying to bend something unbendable so nothing happens",
    "Trying to pour something into something, but missing so it spills next to it",
    "Turning something upside down",
    "Turning the camera downwards while filming something",
    "Turning the camera left while filming something",
    "Turning the camera right while filming something",
    "Turning the camera upwards while filming something",
    "Twisting (wringing) something wet until water comes out",
    "Twisting something",
    "Uncovering something",
    "Unfolding something",
    "Wiping something off of something",
)


# --- EPIC-KITCHENS final frame -------------------------------------------------------------------------------------

TextImageSimilarity = Callable[[str, Sequence[Any]], Sequence[float]]
ImageImageSimilarity = Callable[[Any, Sequence[Any]], Sequence[float]]


def _scores(values: Any, expected: int, name: str) -> list[float]:
    """A similarity callable's answer as floats, checked to have one score per candidate frame."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().reshape(-1).tolist()
    scores = [float(value) for value in values]
    if len(scores) != expected:
        raise ValueError(f"{name} returned {len(scores)} scores for {expected} frames")
    return scores


def final_frame_scores(
    text: str,
    frames: Sequence[Frame],
    text_image_sim: TextImageSimilarity,
    image_image_sim: ImageImageSimilarity,
    last_k: int = 8,
) -> tuple[list[int], list[float]]:
    """The candidate indices (the last ``last_k`` frames, never the first) and their scores.

    ``text_image_sim(text, frames)`` and ``image_image_sim(first_frame, frames)`` each return one similarity
    per frame (CLIP text-image and DINO image-image cosines in ShowMe); batching lets a GPU score all candidates
    at once. The score is their product, so a frame must both show the narration and stay in the same scene.
    """
    if last_k < 1:
        raise ValueError(f"last_k must be at least 1, got {last_k}")
    indices = list(range(max(1, len(frames) - last_k), len(frames)))
    if not indices:
        return [], []
    candidates = [frames[i] for i in indices]
    semantic = _scores(text_image_sim(text, candidates), len(indices), "text_image_sim")
    visual = _scores(image_image_sim(frames[0], candidates), len(indices), "image_image_sim")
    return indices, [s * v for s, v in zip(semantic, visual)]


def select_final_frame(
    text: str,
    frames: Sequence[Frame],
    text_image_sim: TextImageSimilarity,
    image_image_sim: ImageImageSimilarity,
    threshold: float = 0.1,
    last_k: int = 8,
) -> int | None:
    """Index (into ``frames``) of the clip's target frame, or None when no candidate scores above ``threshold``.

    ``frames`` are the clip's frames after downsampling, first frame first; see :func:`final_frame_scores` for
    the score. A clip with fewer than two frames has no candidate. Ties go to the later frame (nearer the end of
    the action); NaN scores never win.
    """
    indices, scores = final_frame_scores(text, frames, text_image_sim, image_image_sim, last_k)
    best: int | None = None
    best_score = -math.inf
    for index, score in zip(indices, scores):
        if not math.isnan(score) and score >= best_score:
            best, best_score = index, score
    return best if best is not None and best_score > threshold else None
