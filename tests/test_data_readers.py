"""Dataset readers on the real annotation samples (tests/data/samples, copied unmodified from ../shared/data) and,
for the sources whose files may not be redistributed here (SSv2, WikiHow/VGSI), on small fixtures written in the
tests from the documented public formats. Also the training API: adjacent step pairs and clips with frame sampling.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showme_i2g.data import (
    Clip,
    Recipe,
    Step,
    adjacent_pairs,
    ego4d_clips,
    epic100_clips,
    fill_template,
    load_clip_frames,
    read_captaincook4d,
    read_clip_manifest,
    read_ego4d,
    read_epic100,
    read_htstep,
    read_recipes_json,
    read_ssv2,
    read_wikihow,
    sample_clip,
    ssv2_clips,
    uniform_indices,
)
from showme_i2g.errors import InvalidInputError, ShowMeError

SAMPLES = Path(__file__).parent / "data" / "samples"
CC4D = SAMPLES / "captaincook4d"
HTSTEP = SAMPLES / "htstep"
EPIC = SAMPLES / "epic100" / "EPIC_100_validation.sample.csv"


def test_samples_are_complete_and_licensed():
    for folder in ("captaincook4d", "htstep", "epic100"):
        licence = (SAMPLES / folder / "LICENSE").read_text(encoding="utf-8")
        assert len(licence) > 200 or "Creative Commons" in licence
    assert "MIT License" in (CC4D / "LICENSE").read_text()
    assert "Attribution-NonCommercial 4.0" in (HTSTEP / "LICENSE").read_text()
    assert "NonCommerial 4.0" in (SAMPLES / "epic100" / "LICENSE").read_text()  # sic, as the source spells it


# --- CaptainCook4D ----------------------------------------------------------------------------------------------


def _captaincook(**kwargs):
    return read_captaincook4d(
        CC4D / "step_annotations.csv",
        step_descriptions=CC4D / "activity_step_description.csv",
        error_annotations=CC4D / "error_annotations.sample.json",
        **kwargs,
    )


def test_captaincook4d_recordings_goals_and_step_text():
    result = _captaincook()
    assert result.problems == []
    assert [r.id for r in result][:3] == ["1_7", "1_10", "1_14"]
    assert len(result) == 10
    first = result.recipes[0]
    assert first.goal == "Microwave Egg Sandwich" and first.source == "captaincook4d"
    assert len(first.steps) == 12
    step = first.steps[0]
    assert step.text == "Coat a 6-oz. ramekin cup with cooking spray"  # "Coat -Coat ..." -> label + step
    assert step.meta["verb"] == "Coat" and step.meta["step_id"] == 3
    assert (step.start, step.end) == (7.072, 46.288)
    starts = [s.start for s in first.steps]
    assert starts == sorted(starts)


def test_captaincook4d_drops_steps_with_errors_as_i2g_does():
    result = _captaincook()
    assert result.counts == {"error_steps_dropped": 28}  # the 28 has_errors=True rows of the sample
    recording = next(r for r in result if r.id == "1_10")
    assert len(recording.steps) == 11
    assert 4 not in [s.meta["step_id"] for s in recording.steps]  # the skipped "Microwave ... 30 seconds"
    assert all(not s.meta["has_errors"] for r in result for s in r.steps)
    kept = _captaincook(keep_errors=True)
    wrong = next(s for s in next(r for r in kept if r.id == "1_10").steps if s.meta["step_id"] == 4)
    assert wrong.meta["errors"] == ["Missing Step"] and wrong.meta["skipped"]
    assert wrong.start is None and wrong.end is None
    assert [s.meta["step_id"] for s in next(r for r in kept if r.id == "1_10").steps][:4] == [3, 1, 4, 11]


def test_captaincook4d_errors_json_alone_marks_a_step(tmp_path):
    csv = tmp_path / "steps.csv"
    csv.write_text(
        '"recording_id","step_id","start_time","end_time","description","has_errors"\n'
        '"3_1","2","1.0","2.0","Pour-Pour milk","False"\n'
        '"3_1","5","3.0","4.0","Stir-Stir it","False"\n'
    )
    errors = tmp_path / "errors.json"
    errors.write_text(json.dumps([{"recording_id": "3_1", "activity_id": 3, "step_annotations": [
        {"step_id": 5, "errors": [{"tag": "Technique", "description": "spilled"}]}]}]))
    result = read_captaincook4d(csv, error_annotations=errors)
    assert [s.text for s in result.recipes[0].steps] == ["Pour milk"]
    assert result.recipes[0].goal is None


def test_captaincook4d_malformed_rows_are_reported_with_file_and_line(tmp_path, caplog):
    csv = tmp_path / "steps.csv"
    csv.write_text(
        '"recording_id","step_id","start_time","end_time","description","has_errors"\n'
        '"1_7","3","7.0","9.0","Coat-Coat the cup","False"\n'
        '"1_7","x","7.0","9.0","Pour-Pour","False"\n'
        '"1_7","4","9.0","8.0","Cut-Cut","False"\n'
        '"1_7","5","10.0"\n'
        '"1_7","6","11.0","12.0","Top-Top","maybe"\n'
    )
    with caplog.at_level(logging.WARNING, logger="showme_i2g.data"):
        result = read_captaincook4d(csv)
    assert [(p.file, p.line) for p in result.problems] == [(str(csv), 3), (str(csv), 4), (str(csv), 5), (str(csv), 6)]
    assert "step_id 'x' is not a whole number" in result.problems[0].message
    assert "before start_time" in result.problems[1].message
    assert "has 3 fields where the header names 6" in result.problems[2].message
    assert "neither True nor False" in result.problems[3].message
    assert str(result.problems[0]).startswith(f"{csv}:3: ")
    assert len(result.recipes[0].steps) == 1
    assert sum("skipped" in record.message for record in caplog.records) == 4


@pytest.mark.parametrize(
    "content, fragment",
    [(None, "does not exist"), ("", "is empty"), ("a,b\n1,2\n", "lacks the column(s) recording_id")],
)
def test_captaincook4d_missing_or_wrong_file_is_one_sentence(tmp_path, content, fragment):
    path = tmp_path / "step_annotations.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ShowMeError, match=re.escape(fragment)) as info:
        read_captaincook4d(path)
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")


def _patterns(**kwargs):
    """The pattern sample: five full recordings of the public files with repeated step ids, multi-word action
    labels and rows out of time order (tests/data/samples/README.md)."""
    return read_captaincook4d(
        CC4D / "step_annotations.patterns.csv",
        step_descriptions=CC4D / "activity_step_description.patterns.csv",
        error_annotations=CC4D / "error_annotations.patterns.json",
        **kwargs,
    )


def test_captaincook4d_errors_belong_to_their_occurrence_not_to_the_step_id():
    # In 2_28, step 20 ("Microwave the plate ...") occurs twice: listed first at 831.6 s with a Timing Error, then
    # at 831.56 s correctly; step 18 occurs twice, both correct. Only the wrong occurrence may go.
    recording = next(r for r in _patterns() if r.id == "2_28")
    by_id = {}
    for step in recording.steps:
        by_id.setdefault(step.meta["step_id"], []).append(step)
    assert len(by_id[20]) == 1 and by_id[20][0].meta["errors"] == []
    assert by_id[20][0].start == pytest.approx(831.5568, abs=1e-3)
    assert len(by_id[18]) == 2
    kept = next(r for r in _patterns(keep_errors=True) if r.id == "2_28")
    twenties = [s for s in kept.steps if s.meta["step_id"] == 20]
    assert [s.meta["errors"] for s in twenties] == [[], ["Timing Error", "Preparation Error"]]  # by start time
    # the CSV's own has_errors column agrees occurrence by occurrence, so the JSON changes nothing now
    csv_only = read_captaincook4d(CC4D / "step_annotations.patterns.csv")
    assert sum(len(r.steps) for r in csv_only) == sum(len(r.steps) for r in _patterns()) == 75


def test_captaincook4d_errors_json_matches_by_order_when_times_differ(tmp_path):
    csv = tmp_path / "steps.csv"
    csv.write_text(
        '"recording_id","step_id","start_time","end_time","description","has_errors"\n'
        '"3_1","5","1.0","2.0","Stir-Stir it","False"\n'
        '"3_1","5","3.0","4.0","Stir-Stir it again","False"\n'
    )
    errors = tmp_path / "errors.json"
    errors.write_text(json.dumps([{"recording_id": "3_1", "step_annotations": [
        {"step_id": 5}, {"step_id": 5, "errors": [{"tag": "Technique"}]}]}]))  # no times: the order decides
    assert [s.text for s in read_captaincook4d(csv, error_annotations=errors).recipes[0].steps] == ["Stir it"]


@pytest.mark.parametrize(
    "description, verb, text",
    [
        ("Measure and add-Measure and add 2 tbsp flour to the mixing bowl", "Measure and add",
         "Measure and add 2 tbsp flour to the mixing bowl"),
        ("Cut or tear-Cut or tear 1 slices of bread into bite-size pieces", "Cut or tear",
         "Cut or tear 1 slices of bread into bite-size pieces"),
        ("chop or grate-chop or grate the cucumber", "chop or grate", "chop or grate the cucumber"),
        ("continue cooking-continue cooking, stirring often, for 2-3 minutes, until vegetables are crisp-tender",
         "continue cooking", "continue cooking, stirring often, for 2-3 minutes, until vegetables are crisp-tender"),
        ("Coat -Coat a 6-oz. ramekin cup with cooking spray", "Coat", "Coat a 6-oz. ramekin cup with cooking spray"),
        ("Microwave -Continue to Microwave for 15-30 more seconds", "Microwave",
         "Continue to Microwave for 15-30 more seconds"),
        # the label is the verb the step leaves out: it stays
        ("Measure and add-a pinch of salt to the mixing bowl", "Measure and add",
         "Measure and add a pinch of salt to the mixing bowl"),
        ("Add-1/2 tsp salt to the pan", "Add", "Add 1/2 tsp salt to the pan"),
        ("Place-Place 5 meatballs in a Microwave-safe plate", "Place", "Place 5 meatballs in a Microwave-safe plate"),
    ],
)
def test_captaincook4d_action_labels_of_any_length_leave_the_text(description, verb, text):
    from showme_i2g.data.readers import _split_captaincook_description

    assert _split_captaincook_description(description) == (verb, text)


def test_captaincook4d_pattern_sample_has_no_label_left_in_a_step():
    steps = [s for r in _patterns() for s in r.steps]
    assert not [s.text for s in steps if re.match(r"^[A-Za-z]+(?: [A-Za-z]+)*\s*-", s.text)]
    assert {s.meta["verb"] for s in steps} >= {"Measure and add", "Cut or tear", "chop or grate", "continue cooking"}


def test_captaincook4d_steps_follow_start_time_not_file_order():
    result = _patterns()
    for recipe in list(result) + list(_captaincook()):
        starts = [s.start for s in recipe.steps]
        assert starts == sorted(starts), recipe.id
    recording = next(r for r in result if r.id == "2_28")
    # the file lists step 27 (69 s) and step 16 (565 s) last; they were done second and third
    assert [s.meta["step_id"] for s in recording.steps] == [27, 14, 16, 26, 20, 18, 18, 25]
    assert result.counts["recordings_reordered_by_time"] == 4


def test_captaincook4d_skipped_step_keeps_its_place_among_sorted_steps(tmp_path):
    csv = tmp_path / "steps.csv"
    csv.write_text(
        '"recording_id","step_id","start_time","end_time","description","has_errors"\n'
        '"3_1","1","5.0","6.0","Pour-Pour milk","False"\n'
        '"3_1","2","-1","-1","Stir-Stir it","True"\n'
        '"3_1","3","1.0","2.0","Cut-Cut bread","False"\n'
    )
    steps = read_captaincook4d(csv, keep_errors=True).recipes[0].steps
    assert [s.meta["step_id"] for s in steps] == [3, 1, 2]  # the skipped step stays after the one before it


# --- HT-Step ----------------------------------------------------------------------------------------------------


def test_htstep_taxonomy_articles_in_step_order():
    result = read_htstep(HTSTEP / "taxonomy.sample.csv")
    assert result.problems == []
    assert [r.goal for r in result][:2] == ["Make Pastel De Papa", "Make Chiles Rellenos"]
    pastel = result.recipes[0]
    assert len(pastel.steps) == 13
    assert [s.meta["step_index"] for s in pastel.steps] == list(range(13))
    assert pastel.steps[0].headline == "Make mashed potatoes."
    assert pastel.steps[0].text.startswith("Make mashed potatoes. Chop the potatoes into chunks")
    assert pastel.steps[0].text.endswith("salt and pepper to taste.")  # the paragraph's trailing ";" dropped
    assert pastel.steps[1].text == "Chop and sauté a large onion with cumin until soft and sweet."  # no paragraph


def test_htstep_image_paths_and_headline_semicolons_are_cleaned_and_reported():
    path = HTSTEP / "taxonomy.patterns.csv"
    result = read_htstep(path)
    texts = [s.text for r in result for s in r.steps]
    assert not [t for t in texts if "/images/" in t or ".jpg" in t or "[[Image" in t]
    cleaned = [p for p in result.problems if p.message.startswith("cleaned: ")]
    assert len(cleaned) == len(result.problems) == 23
    assert sum("image path" in p.message for p in cleaned) == 21  # every such step of the full file
    assert sum("trailing ';'" in p.message for p in cleaned) == 2
    assert all(p.file == str(path) and p.line for p in cleaned)
    headlines = [s.headline for r in result for s in r.steps]
    assert "Preheat the oven to 350º F/ 117º C/ Gas Mark 4." in headlines
    assert not [h for h in headlines if h.endswith(";")]
    hens = next(r for r in result if r.id == "Cook Cornish Game Hens (A)")
    assert hens.steps[1].text.endswith("you can arrange them evenly on the backing rack.")
    image_only = [s for r in result for s in r.steps if s.meta["global_step_index"] == 1928]
    assert image_only[0].text == image_only[0].headline  # a paragraph of image paths alone leaves the headline


def test_htstep_annotations_place_steps_in_videos(tmp_path):
    annotations = tmp_path / "annotations.json"
    annotations.write_text(
        "{\n"
        '  "vid_a": {"subset": "train", "activity": "Make Pastel De Papa", "variation": "none",\n'
        '            "annotations": [{"id": 1, "segment": [30.0, 41.5]}, {"id": 0, "segment": [2.0, 20.0]}]},\n'
        '  "vid_b": {"subset": "val", "activity": "Make Pastel De Papa", "variation": "none",\n'
        '            "annotations": [{"id": 99999, "segment": [1, 2]}]},\n'
        '  "vid_c": {"subset": "val", "annotations": [{"id": 0, "segment": [5, 3]}]}\n'
        "}\n"
    )
    result = read_htstep(HTSTEP / "taxonomy.sample.csv", annotations=annotations)
    assert [r.id for r in result] == ["vid_a"]
    video = result.recipes[0]
    assert [s.meta["global_step_index"] for s in video.steps] == [0, 1]  # ordered by start time
    assert (video.steps[0].start, video.steps[0].end) == (2.0, 20.0)
    assert video.meta["subset"] == "train"
    assert [(p.line, "99999" in p.message) for p in result.problems] == [(4, True), (6, False)]
    assert "ends before it starts" in result.problems[1].message


# --- WikiHow (VGSI JSON lines; fixture in the documented format) -------------------------------------------------


def test_wikihow_jsonl_one_recipe_per_method(tmp_path):
    article = {
        "file_id": "12345", "goal": "Make Pancakes", "goal_description": "Fluffy.",
        "category_hierarchy": ["Food and Entertaining", "Breakfast"],
        "methods": [
            {"name": "Classic", "steps": [
                {"headline": "Mix the batter.", "description": "Whisk flour, milk and eggs.",
                 "img": "https://www.wikihow.com/images/a/ab/Make-Pancakes-Step-1.jpg", "img_license": "CC",
                 "step_id": 1},
                {"headline": "Fry.", "description": "", "img": "", "step_id": 2}]},
            {"name": "Vegan", "steps": [{"headline": "Use oat milk.", "description": "It works."}]},
        ],
    }
    path = tmp_path / "wikihow.jsonl"
    path.write_text(json.dumps(article) + "\n\n" + "{not json\n" + json.dumps({"goal": "No methods"}) + "\n")
    result = read_wikihow(path, image_root=tmp_path / "images")
    assert [r.id for r in result] == ["12345/1", "12345/2"]
    classic = result.recipes[0]
    assert classic.goal == "Make Pancakes" and classic.meta["method"] == "Classic"
    assert classic.steps[0].text == "Mix the batter. Whisk flour, milk and eggs."
    assert classic.steps[0].media == tmp_path / "images" / "Make-Pancakes-Step-1.jpg"
    assert classic.steps[1].text == "Fry." and classic.steps[1].media is None
    assert [(p.line, p.message.split(" (")[0]) for p in result.problems] == [
        (3, "is not valid JSON"), (4, "methods is missing or empty")]


# --- EPIC-KITCHENS-100 ------------------------------------------------------------------------------------------


def test_epic100_sample_narrations_grouped_by_video():
    result = read_epic100(EPIC)
    assert result.problems == []
    assert sum(len(r.steps) for r in result) == 200  # every row of the sample
    video = result.recipes[0]
    assert video.id == "P01_11" and video.goal is None and video.meta["participant_id"] == "P01"
    first = video.steps[0]
    assert first.text == "take plate"
    assert (first.start, first.end) == (0.0, 1.89)
    assert first.meta["narration_id"] == "P01_11_0"
    assert (first.meta["start_frame"], first.meta["stop_frame"]) == (1, 113)
    assert first.meta["verb"] == "take" and first.meta["noun_class"] == 2 and first.meta["all_nouns"] == ["plate"]
    starts = [s.start for s in video.steps]
    assert starts == sorted(starts)


def test_epic100_bad_rows_reported(tmp_path):
    lines = EPIC.read_text().splitlines()
    bad = lines[1].replace("00:00:01.89", "1.89s")
    path = tmp_path / "epic.csv"
    path.write_text("\n".join([lines[0], bad, lines[2]]) + "\n")
    result = read_epic100(path)
    assert len(result.problems) == 1 and result.problems[0].line == 2
    assert "stop_timestamp '1.89s' is not HH:MM:SS.ff" in result.problems[0].message
    assert sum(len(r.steps) for r in result) == 1


# --- Something-Something v2 (fixture in the documented format: the files are not redistributable) ---------------


def _ssv2_files(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"Putting something into something": "106", "Holding something": "16",
                                  "Putting number of something onto something": "102"}, indent=1))
    train = tmp_path / "train.json"
    records = [
        {"id": "78687", "label": "putting a pen into a cup", "template": "Putting [something] into [something]",
         "placeholders": ["a pen", "a cup"]},
        {"id": "42326", "label": "holding potato", "template": "Holding [something]", "placeholders": ["potato"]},
        {"id": "3", "label": "x", "template": "Putting [something] into [something]", "placeholders": ["one"]},
        {"id": "4", "label": "x", "template": "Dancing with [something]", "placeholders": ["a mop"]},
        {"id": "5", "label": "putting 2 coins onto a book",
         "template": "Putting [number of] [something] onto [something]", "placeholders": ["2", "coins", "a book"]},
    ]  # one record per line, after an opening "[" line: record k starts on line k + 1
    train.write_text("[\n" + ",\n".join(json.dumps(record) for record in records) + "\n]\n")
    return labels, train


def test_ssv2_fills_templates_and_reports_bad_clips(tmp_path):
    labels, train = _ssv2_files(tmp_path)
    result = read_ssv2(train, labels=labels, videos_root=tmp_path / "videos")
    assert [r.id for r in result] == ["78687", "42326", "5"]
    pen = result.recipes[0]
    assert pen.steps[0].text == "Putting a pen into a cup"
    assert pen.meta["label"] == "Putting something into something" and pen.meta["class_id"] == 106
    assert pen.steps[0].media == tmp_path / "videos" / "78687.webm"
    assert result.recipes[2].steps[0].text == "Putting 2 coins onto a book"
    assert [p.line for p in result.problems] == [4, 5]
    assert "2 placeholders but 1" in result.problems[0].message
    assert "not in the labels file" in result.problems[1].message


def test_fill_template_capitalises_an_opening_object():
    assert fill_template("[Something] falling like a rock", ["a pen"]) == "A pen falling like a rock"


def test_ssv2_wrong_format_is_one_sentence(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('"just a string"')
    with pytest.raises(InvalidInputError, match="does not hold a JSON list or object"):
        read_ssv2(path)
    path.write_text("[{")
    with pytest.raises(InvalidInputError, match="is not valid JSON"):
        read_ssv2(path)


# --- training API -----------------------------------------------------------------------------------------------


def test_adjacent_pairs_of_recipes():
    recipe = Recipe("Make tea", [Step("Boil water", media=Path("a.png")), Step("Add tea"),
                                 Step("Pour", media=Path("c.png"))], "json", "r1")
    pairs = list(adjacent_pairs([recipe, Recipe("Solo", [Step("Only")], "json", "r2")]))
    assert [(p.first.text, p.second.text, p.index) for p in pairs] == [("Boil water", "Add tea", 0),
                                                                       ("Add tea", "Pour", 1)]
    assert pairs[0].goal == "Make tea" and pairs[0].recipe_id == "r1"
    assert list(adjacent_pairs([recipe], require_media=True)) == []
    real = list(adjacent_pairs(_captaincook()))
    assert len(real) == sum(len(r.steps) - 1 for r in _captaincook())


def test_uniform_indices():
    assert uniform_indices(0, 15, 16) == list(range(16))
    assert uniform_indices(10, 110, 5) == [10, 35, 60, 85, 110]
    assert uniform_indices(3, 4, 3) == [3, 4, 4]  # linspace 3, 3.5, 4 rounds half to even
    with pytest.raises(ValueError):
        uniform_indices(5, 4, 2)


def _frame_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for number in range(1, count + 1):  # EPIC names frames from 1
        Image.fromarray(np.full((8, 10, 3), number, np.uint8)).save(folder / f"frame_{number:010d}.jpg", quality=100)
    return folder


def test_epic100_clips_sample_their_frame_span(tmp_path):
    _frame_folder(tmp_path / "P01" / "rgb_frames" / "P01_11", 150)
    video = read_epic100(EPIC).recipes[0]
    clips = epic100_clips([video], tmp_path)
    first = clips[0]
    assert first.media == tmp_path / "P01" / "rgb_frames" / "P01_11"
    assert (first.start_frame, first.end_frame, first.instruction) == (0, 112, "take plate")
    frames = load_clip_frames(first, 16)
    assert frames.shape == (16, 8, 10, 3) and frames.dtype == np.uint8
    expected = [index + 1 for index in uniform_indices(0, 112, 16)]  # pixel value = EPIC frame number
    assert np.abs(frames[:, 0, 0, 0].astype(int) - np.array(expected)).max() <= 2  # JPEG rounding
    assert frames[0, 0, 0, 0] <= 2 and frames[-1, 0, 0, 0] >= 111
    late = next(c for c in clips if c.meta["stop_frame"] > 150)
    with pytest.raises(InvalidInputError, match="has 150 frames"):
        load_clip_frames(Clip(late.media, "x", "late", start_frame=200, end_frame=300))


def test_ssv2_clips_decode_video_files(tmp_path):
    from showme_i2g.media import save_video

    labels, train = _ssv2_files(tmp_path)
    videos = tmp_path / "videos"
    videos.mkdir()
    save_video([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(20)], videos / "78687.gif", fps=10)
    records = [r for r in read_ssv2(train, labels=labels, videos_root=videos, video_suffix=".gif") if r.id == "78687"]
    clip = ssv2_clips(records)[0]
    assert clip.instruction == "Putting a pen into a cup" and clip.source == "ssv2"
    frames = load_clip_frames(clip, 12)
    assert frames.shape == (12, 16, 16, 3)
    assert frames[:, 0, 0, 0].tolist() == [10 * i for i in uniform_indices(0, 19, 12)]
    with pytest.raises(InvalidInputError, match="has no video path"):
        ssv2_clips(read_ssv2(train, labels=labels))
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_clip_frames(Clip(videos / "missing.mp4", "x", "m"))


# --- the project's own JSON layout --------------------------------------------------------------------------------


def test_recipes_json_with_splits_images_and_problems(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_text(
        "[\n"
        '{"id": "tea", "goal": "Make tea", "split": "test",\n'
        ' "steps": ["Boil water", {"text": "Pour", "image": "p.png"}]},\n'
        '{"goal": "Make toast", "steps": ["Slice bread"]},\n'
        '{"goal": "", "steps": ["x"]},\n'
        '{"goal": "No steps", "steps": []}\n'
        "]\n"
    )
    result = read_recipes_json(path)
    assert [(r.id, r.goal, r.meta) for r in result] == [("tea", "Make tea", {"split": "test"}),
                                                        ("2", "Make toast", {})]
    assert result.recipes[0].steps[1].media == tmp_path / "p.png"
    assert [(p.line, p.message) for p in result.problems] == [(5, "recipe 3: goal is empty or not text"),
                                                              (6, "recipe 4: steps is missing or empty")]
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"recipes": [{"goal": "Make tea", "steps": ["Boil"]}]}))
    assert [r.goal for r in read_recipes_json(nested)] == ["Make tea"]
    nested.write_text(json.dumps({"items": []}))
    with pytest.raises(InvalidInputError, match='neither a list nor a "recipes" list'):
        read_recipes_json(nested)


# --- Ego4D narrations and the project's clip manifest -------------------------------------------------------------


def _ego4d_file(tmp_path: Path) -> Path:
    """A small narration.json written from Ego4D's documented layout (the real file may not be redistributed):
    video_uid -> narration_pass_1/2 -> narrations [{timestamp_sec, timestamp_frame, narration_text,
    annotation_uid}], with one malformed narration, an "#O" and an "#unsure" one, and a redacted video."""
    path = tmp_path / "narration.json"
    path.write_text(
        "{\n"
        '"vid-a": {"status": "complete", "narration_pass_1": {"narrations": [\n'
        '  {"timestamp_sec": 9.5, "timestamp_frame": 285, "narration_text": "#C C puts the knife on the board",'
        ' "annotation_uid": "u1"},\n'
        '  {"timestamp_sec": 3.0, "timestamp_frame": 90, "narration_text": "#C C  picks up a knife.",'
        ' "annotation_uid": "u1"},\n'
        '  {"timestamp_sec": "late", "timestamp_frame": 300, "narration_text": "#C C cuts an onion"},\n'
        '  {"timestamp_sec": 11.0, "timestamp_frame": 330, "narration_text": "#O man X opens the door"},\n'
        '  {"timestamp_sec": 12.0, "timestamp_frame": 360, "narration_text": "#C C #unsure"}],\n'
        '  "summaries": [{"summary_text": "#Summary C cooked"}]},\n'
        ' "narration_pass_2": {"narrations": [{"timestamp_sec": 4.0, "timestamp_frame": 120,'
        ' "narration_text": "#C C holds a knife"}]}},\n'
        '"vid-b": {"status": "redacted"},\n'
        '"vid-c": {"narration_pass_1": {"narrations": [{"timestamp_sec": 0.2, "narration_text": "#c c opens tap"}]}}\n'
        "}\n",
        encoding="utf-8",
    )
    return path


def test_ego4d_narrations_with_problems_and_left_out_counts(tmp_path):
    path = _ego4d_file(tmp_path)
    result = read_ego4d(path)
    assert [r.id for r in result] == ["vid-a", "vid-c"] and all(r.source == "ego4d" for r in result)
    steps = result.recipes[0].steps
    assert [(s.text, s.start) for s in steps] == [("picks up a knife", 3.0), ("puts the knife on the board", 9.5)]
    assert steps[0].meta["timestamp_frame"] == 90 and steps[0].meta["narration_text"].startswith("#C C")
    assert steps[1].meta["narration_id"] == "vid-a_narration_pass_1_0" and steps[1].meta["annotation_uid"] == "u1"
    assert result.recipes[1].steps[0].text == "opens tap"  # lower-case tag, no timestamp_frame
    assert [(p.line, p.message) for p in result.problems] == [
        (2, "timestamp_sec of narration 3 of vid-a in narration_pass_1 is missing or not a number")
    ]
    assert result.counts == {"other_person_narrations": 1, "unsure_narrations": 1, "videos_without_narrations": 1}
    both = read_ego4d(path, passes=("narration_pass_1", "narration_pass_2"))
    assert [s.text for s in both.recipes[0].steps] == ["picks up a knife", "holds a knife",
                                                       "puts the knife on the board"]
    (tmp_path / "list.json").write_text('[{"narration_pass_1": {"narrations": []}}]')
    with pytest.raises(InvalidInputError, match="maps each video_uid"):
        read_ego4d(tmp_path / "list.json")


def test_ego4d_clips_are_a_window_around_the_narration(tmp_path):
    from showme_i2g.media import save_video

    result = read_ego4d(_ego4d_file(tmp_path))
    videos = tmp_path / "full_scale"
    videos.mkdir()
    save_video([np.full((16, 16, 3), 2 * i, np.uint8) for i in range(120)], videos / "vid-a.mp4", fps=30)
    clips = ego4d_clips(result, videos, before=1.0, after=2.0)
    first = clips[0]
    assert first.media == videos / "vid-a.mp4" and first.source == "ego4d" and first.instruction == "picks up a knife"
    assert (first.start_frame, first.end_frame, first.start, first.end) == (60, 150, 2.0, 5.0)
    assert (clips[2].start_frame, clips[2].end_frame) == (0, 66)  # 0.2 s -> frame 6; window clamped at 0
    indices, frames = sample_clip(first, 4)
    assert indices == [60, 80, 99, 119]  # the window, clamped to the video's 120 frames
    assert np.abs(frames[:, 0, 0, 0].astype(int) - 2 * np.array(indices)).max() <= 3  # pixel value = 2 x frame
    with pytest.raises(ValueError, match="after"):
        ego4d_clips(result, videos, after=0)


def test_clip_manifest_is_strict_and_relative_to_its_folder(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "clips.json").write_text(json.dumps({"clips": [
        {"frames": "frames", "instruction": " open   the lid ", "start": 2, "end": 5, "id": "lid"},
        {"video": "frames", "instruction": "close it"},
    ]}))
    first, second = read_clip_manifest(tmp_path / "clips.json")
    assert (first.media, first.instruction, first.id, first.start_frame, first.end_frame) == (
        (tmp_path / "frames").resolve(), "open the lid", "lid", 2, 5)
    assert second.id == "clips:2" and second.source == "manifest" and second.start_frame is None
    for body, message in [
        ("[]", "lists no clips"),
        ("{", "is not valid JSON"),
        ('[{"video": "gone.mp4", "instruction": "x"}]', "Clip 1 of .* names gone.mp4, which does not exist"),
        ('[{"frames": "frames", "instruction": ""}]', "non-empty 'instruction'"),
        ('[{"frames": "frames", "instruction": "x", "start": -1}]', "start=-1"),
        ('[{"frames": "frames", "instruction": "x", "start": 4, "end": 2}]', "ends \\(frame 2\\) before"),
    ]:
        (tmp_path / "bad.json").write_text(body)
        with pytest.raises(InvalidInputError, match=message):
            read_clip_manifest(tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_clip_manifest(tmp_path / "missing.json")
