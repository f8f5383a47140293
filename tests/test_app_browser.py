"""The app in a real browser: Debian's headless Chromium driven by Playwright, on the tiny presets.

Opens the page, fills the recipe tab (an appendix recipe whose steps carry accents, plus one step in Chinese, so the
captions show that every script is drawn), clicks Illustrate and waits for the gallery to fill, then runs the photo
tab on one of its examples and animates the recipe; a screenshot of each tab is saved after its run. Then what a user
of a shared app relies on: a bad input is refused at once, Stop ends a long run, and closing the page ends its run
and frees the model for the next user. The screenshots go to pytest's tmp dir, and also to
``$SHOWME_SCREENSHOTS_DIR`` when set: the README's pictures are made with

    SHOWME_SCREENSHOTS_DIR=docs/screenshots .venv/bin/pytest -q tests/test_app_browser.py

Chromium is installed with apt when it is missing and this runs as root; the test skips, saying why, only when the
browser cannot be had.
"""

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urljoin

import pytest
from PIL import Image

from script_loading import load_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 180_000
# "Put the cooked cakes on a plate."; drawn with the Noto CJK fallback where installed
CJK_STEP = "把煎好的饼放在盘子上。"


def _chromium() -> str:
    """The Debian Chromium binary, installed with apt if missing (as root); otherwise a skip with the reason."""
    if not Path(CHROMIUM).exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)")
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not Path(CHROMIUM).exists():
            pytest.skip(f"`apt-get install chromium` failed: {done.stderr.strip().splitlines()[-1:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = load_app()
    from showme_i2g.app.presets import pick_presets

    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path_factory.mktemp("runs"))
    demo = app.build_demo(studio)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, local_url, _ = app.launch(demo, studio, "127.0.0.1", port, block=False, quiet=True, ssr_mode=False)
    yield local_url, studio
    demo.close()


@pytest.fixture(scope="module")
def browser(served):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return page


@pytest.fixture(scope="module")
def page(served, browser):
    page = _open(browser, served[0])
    yield page
    page.close()


def _start_long_run(page) -> None:
    """16 steps x 50 denoising steps at 256 px on the tiny model: a minute or so on a CPU."""
    page.get_by_role("tab", name="Recipe → illustrations").click()
    page.locator("#goal textarea").fill("Make soup")
    page.locator("#steps textarea").fill("\n".join(f"Stir the pot, round {i}." for i in range(1, 17)))
    if not page.locator("#recipe-steps").is_visible():
        page.get_by_text("Options").first.click()
    for box, value in (("#recipe-steps", "50"), ("#recipe-size", "256")):
        number = page.locator(f"{box} input[type=number]")
        number.wait_for(state="visible")
        for _ in range(20):  # a slider still mounting (the accordion opening, under load) may reset a fill: retry
            number.fill(value)
            number.press("Enter")
            page.wait_for_timeout(250)
            if number.input_value() == value:
                break
        assert number.input_value() == value, f"{box} did not take {value}"
    page.locator("#illustrate").click()
    page.get_by_text("denoising").first.wait_for()  # the progress bar, fed by the pipeline's steps...
    page.get_by_text(re.compile(r"\b[1-9]\d*/50\b")).first.wait_for()  # ...counting the 50 the slider asked for


def _wait_until_free(page, studio, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if not studio.models.busy(("illustration", "tiny")) and not studio.running.running():
            return True
        page.wait_for_timeout(100)
    return False


def _save(page, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as shot:
        assert shot.width >= 1000 and shot.height >= 500
    target = os.environ.get("SHOWME_SCREENSHOTS_DIR")
    if target:  # for the README: 256 colours keep each picture a few hundred kB
        Path(target).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(256).save(Path(target) / path.name, optimize=True)
    return path


def test_three_tabs_in_a_real_browser(page, browser, served, tmp_path) -> None:
    # The banner says honestly which models run.
    banner = page.locator("#banner")
    assert "untrained, random weights" in banner.inner_text()

    # Tab 1: pick the pupusas recipe of the paper's appendix (its second step names "chicharrón"), keep four steps,
    # add one in Chinese, illustrate it, see the gallery fill with every caption as typed.
    page.get_by_text("Make Pupusas (Salvadoran Stuffed Corn Cakes)").click()
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#goal textarea")).to_have_value("Make Pupusas (Salvadoran Stuffed Corn Cakes)")
    steps = page.locator("#steps textarea")
    expect(steps).to_have_value(re.compile(r"^Combine 2 cups of masa harina"))
    steps.fill("\n".join([*steps.input_value().splitlines()[:4], CJK_STEP]))  # the steps box is editable
    page.locator("#illustrate").click()
    page.locator("#gallery img").nth(4).wait_for(state="visible")
    assert page.locator("#gallery img").count() == 5
    page.locator('#downloads a[download="illustrations.zip"]').wait_for()
    assert "chicharrón" in page.locator("#gallery").inner_text()
    shot = _save(page, "recipe", tmp_path)
    # The storyboard PNG, as a user who downloads it sees it: the captions are drawn by showme_i2g.captions
    # (accents and the Chinese step included, each wrapped under its picture).
    href = page.locator('#downloads a[download="storyboard.png"]').get_attribute("href")
    board = _open(browser, urljoin(served[0], href))
    board.locator("img").wait_for()
    _save(board, "storyboard", tmp_path)
    board.close()

    # Tab 2: pick a drawn example photo, make the edit and the video.
    page.get_by_role("tab", name="Photo → edit / video").click()
    page.get_by_text("Cut the tomato in half").first.click()
    expect(page.locator("#instruction textarea")).to_have_value("Cut the tomato in half")
    page.locator("#photo-go").click()
    page.locator("#tab-photo video").first.wait_for(state="visible")
    page.locator('#tab-photo a[download="video.gif"]').wait_for()
    _save(page, "photo", tmp_path)

    # Tab 3: animate the recipe made on tab 1.
    page.get_by_role("tab", name="Animate my recipe").click()
    assert page.locator("#tab-animate img").count() >= 5  # the recipe's steps are shown here too
    page.locator("#animate-go").click()
    page.locator('#tab-animate a[download="recipe_clips.zip"]').wait_for()
    assert page.locator("#tab-animate video").count() >= 1
    _save(page, "animate", tmp_path)
    assert shot.exists()


def test_a_bad_input_is_refused_at_once(page, served) -> None:
    """The validator answers before the job enters the queue: the sentence shows while nothing runs."""
    page.get_by_role("tab", name="Recipe → illustrations").click()
    page.locator("#goal textarea").fill("   ")
    page.locator("#steps textarea").fill("Boil the water.")
    page.locator("#illustrate").click()
    page.get_by_text("The goal is empty; please write a few words.").first.wait_for(timeout=10_000)
    assert not served[1].running.running()


def test_stop_button_ends_a_long_run(page, served) -> None:
    studio = served[1]
    _start_long_run(page)
    assert studio.models.busy(("illustration", "tiny"))
    page.locator("#recipe-stop").click()
    assert _wait_until_free(page, studio, 10)  # 16 images x 50 steps take a minute; Stop ends it at the next step


def test_closing_the_page_ends_its_run_and_frees_the_model(browser, served) -> None:
    url, studio = served
    other = _open(browser, url)
    _start_long_run(other)
    assert studio.models.busy(("illustration", "tiny"))
    other.close()  # the tab goes away mid-run: gradio's unload event stops the session's runs
    helper = _open(browser, url)
    try:
        assert _wait_until_free(helper, studio, 15)
    finally:
        helper.close()


def test_redraw_one_step_from_the_gallery(browser, served) -> None:
    """Click a step's picture, press Re-draw: that step changes, every other picture stays byte for byte (gradio
    names a served file by a hash of its bytes, so a kept picture even keeps its address)."""
    import io

    import numpy as np

    url, _ = served
    page = _open(browser, url)
    expect = pytest.importorskip("playwright.sync_api").expect
    try:
        page.get_by_role("tab", name="Recipe → illustrations").click()
        page.locator("#goal textarea").fill("Make tea")
        page.locator("#steps textarea").fill("Boil the water.\nWarm the pot.\nPour it over the leaves.")
        page.locator("#illustrate").click()
        page.locator("#gallery img").nth(2).wait_for(state="visible")

        def pictures() -> tuple[list[str], list[np.ndarray]]:
            images = [page.get_by_role("img", name=re.compile(rf"^{n}\. ")).first for n in (1, 2, 3)]
            sources = [image.get_attribute("src") for image in images]
            return sources, [np.asarray(Image.open(io.BytesIO(page.request.get(urljoin(url, src)).body())))
                             for src in sources]

        old_sources, before = pictures()
        page.get_by_role("img", name=re.compile(r"^2\. ")).first.click()  # selecting a picture picks its step
        expect(page.locator("#redraw-step input")).to_have_value("2")
        page.keyboard.press("Escape")  # close the gallery's preview of the picked picture
        page.locator("#redraw").click()
        expect(page.get_by_role("img", name=re.compile(r"^2\. ")).first).not_to_have_attribute(
            "src", old_sources[1], timeout=60_000)
        new_sources, after = pictures()
        assert (new_sources[0], new_sources[2]) == (old_sources[0], old_sources[2])
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[2], after[2])
        assert not np.array_equal(before[1], after[1])
    finally:
        page.close()
