"""Dataset readers (one common record for every source), ShowMe's curation filters, and what training reads.

Records (:mod:`.records`)
    ``Recipe(goal, steps, source, id, meta)`` with ``Step(text, headline, media, start, end, meta)``: a goal and
    its ordered steps, each with its text, optional picture/video path and time span in seconds. Every reader
    returns a ``ReadResult``: iterate it for the recipes; ``.problems`` lists each skipped row as
    ``Problem(file, line, message)`` (also logged as a warning), ``.counts`` what was left out on purpose. A
    missing or unparsable file raises :class:`~showme_i2g.errors.InvalidInputError` with one sentence.

Readers (:mod:`.readers`)
    ``read_captaincook4d(step_annotations.csv, step_descriptions=..., error_annotations=...)`` -- one recipe per
    recording, steps with errors (and skipped steps) dropped as in I2G; ``read_htstep(taxonomy.csv,
    annotations=annotations.json)``; ``read_wikihow(vgsi.jsonl, image_root=...)`` -- one recipe per method;
    ``read_epic100(EPIC_100_*.csv)`` -- one record per video, a step per narration (frames in ``meta``);
    ``read_ssv2(train.json, labels=labels.json, videos_root=...)`` -- one single-step record per clip;
    ``read_ego4d(narration.json)`` -- one record per video, a step per camera-wearer narration ("#C C" removed);
    ``read_recipes_json(recipes.json)`` -- the project's own ``[{"id", "goal", "steps", "split"}]`` layout.

Curation (:mod:`.curation`)
    ``SSV2_TEMPLATES`` (the 174 labels), ``SSV2_RULES``, ``judge_template``, ``split_templates`` (109 kept, 65
    dropped; ``ssv2_template_table`` lists the drops), ``curate_ssv2(records)``; ``final_frame_scores`` /
    ``select_final_frame`` (CLIP x DINO over the last 8 frames, > 0.1) with pluggable similarity callables.

Training API (:mod:`.clips`)
    - I2G: ``adjacent_pairs(recipes, require_media=False)`` yields ``StepPair(goal, first, second, recipe_id,
      index, source)`` for every (v_i, v_{i+1}).
    - ShowMe: ``Clip(media, instruction, id, source, start_frame, end_frame, start, end, meta)`` -- a video file
      or frame folder, a 0-based inclusive frame span (or seconds), the instruction. Build them with
      ``ssv2_clips(curate_ssv2(read_ssv2(train.json, videos_root=DIR))[0])`` or
      ``epic100_clips(read_epic100(csv), root)`` or ``ego4d_clips(read_ego4d(narration.json), root, before=1.0,
      after=2.0)`` (a window around each narration's moment) or ``read_clip_manifest(clips.json)`` (the project's
      own ``[{"video"|"frames", "instruction", "start"?, "end"?}]``); ``load_clip_frames(clip, num_frames)`` returns
      ``(T, H, W, 3)`` uint8 sampled uniformly over the span, first and last frame included
      (``DEFAULT_NUM_FRAMES``: 12 for SSv2, 16 for EPIC as in ShowMe), ``sample_clip`` the same with the media's
      frame indices it took; ``curate_epic100(clips, text_image_sim,
      image_image_sim)`` returns ``(kept, dropped)`` with each kept clip ending at its selected final frame.
"""

from .clips import (
    DEFAULT_NUM_FRAMES,
    Clip,
    StepPair,
    adjacent_pairs,
    clip_span,
    curate_epic100,
    ego4d_clips,
    epic100_clips,
    extract_step_frames,
    find_step_video,
    load_clip_frames,
    read_clip_manifest,
    sample_clip,
    ssv2_clips,
    step_key_frame,
    uniform_indices,
)
from .curation import (
    SSV2_RULES,
    SSV2_TEMPLATES,
    TemplateDecision,
    TemplateRule,
    curate_ssv2,
    final_frame_scores,
    judge_template,
    select_final_frame,
    split_templates,
    ssv2_template_table,
)
from .formats import RECIPE_FORMATS, read_recipe_file
from .readers import (
    fill_template,
    read_captaincook4d,
    read_ego4d,
    read_epic100,
    read_htstep,
    read_recipes_json,
    read_ssv2,
    read_wikihow,
    template_label,
)
from .records import Problem, ReadResult, Recipe, Step

__all__ = [
    "read_recipe_file",
    "RECIPE_FORMATS",
    "step_key_frame",
    "find_step_video",
    "extract_step_frames",
    "DEFAULT_NUM_FRAMES",
    "SSV2_RULES",
    "SSV2_TEMPLATES",
    "Clip",
    "Problem",
    "ReadResult",
    "Recipe",
    "Step",
    "StepPair",
    "TemplateDecision",
    "TemplateRule",
    "adjacent_pairs",
    "clip_span",
    "curate_epic100",
    "curate_ssv2",
    "ego4d_clips",
    "epic100_clips",
    "fill_template",
    "final_frame_scores",
    "judge_template",
    "load_clip_frames",
    "read_captaincook4d",
    "read_clip_manifest",
    "read_ego4d",
    "read_epic100",
    "read_htstep",
    "read_recipes_json",
    "read_ssv2",
    "read_wikihow",
    "sample_clip",
    "select_final_frame",
    "split_templates",
    "ssv2_clips",
    "ssv2_template_table",
    "template_label",
    "uniform_indices",
]
