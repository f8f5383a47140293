"""The Gradio app end to end: launched on 127.0.0.1 with the tiny presets and driven through gradio_client.

Every tab runs for real (tiny models, few denoising steps, small sizes) and its outputs are opened and checked:
images of the right size, ZIP / HTML / run.json contents, MP4 and GIF frame counts. Bad input must come back as
one clear sentence before the job enters the queue, even while another user's run holds the model. A run must end
within about one denoising step of a Stop, a cancelled client or a closed page, and by itself once its time budget
is spent. Weights are fetched only by ``--download``, before the page serves. ``python app.py`` must start offline
with no arguments and print its URL, as the README's set-up command and CI rely on.
"""

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from showme_i2g.app.presets import TINY_LABEL, pick_presets
from showme_i2g.media import read_video_frames

from script_loading import load_app

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


app = load_app()
SMALL = dict(seed=0, inference_steps=2, size=64)  # the tiny SDXL needs sides that are multiples of 16


class CannedPlanner:
    """Stands in for the 15 s-to-load GGUF planner (tested on its own in test_planner.py): numbered steps, at most
    eight, with the real planner's note when it writes fewer than asked."""

    name = "canned"

    def plan(self, goal: str, num_steps: int, *, seed: int, progress=None):
        from showme_i2g.text.planner import PlannedSteps

        written = min(num_steps, 8)
        if progress is not None:
            progress(0.5, "Writing the steps")
        note = None if written == num_steps else f"The planner wrote {written} steps, not {num_steps}."
        steps = [f"{goal}: part {i} (seed {seed})" for i in range(1, written + 1)]
        return PlannedSteps(steps, asked=num_steps, note=note)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path_factory.mktemp("runs"),
                        planner_factory=CannedPlanner)
    demo = app.build_demo(studio)
    _, url, _ = app.launch(demo, studio, "127.0.0.1", _free_port(), block=False, quiet=True, ssr_mode=False)
    yield studio, url
    demo.close()


@pytest.fixture
def client(served, tmp_path):
    """A fresh browser session (its own state and Stop button) that downloads outputs into tmp_path."""
    return Client(served[1], verbose=False, download_files=str(tmp_path))


def illustrate(client, goal="Make tea", steps="1. Boil the water.\n2. Pour it over the leaves.\n3. Wait.", **kw):
    o = {**SMALL, **kw}
    return client.predict(goal, steps, "tiny", o["seed"], o["inference_steps"], 5.0, o["size"], 1.0,
                          api_name="/illustrate")


def photo(client, image, instruction="Cut the tomato in half", mode="both", frames=4, fit="crop"):
    return client.predict(handle_file(str(image)), instruction, mode, "tiny", 0, 2, 7.5, frames, 8, fit,
                          api_name="/photo")


def error_of(call) -> str:
    with pytest.raises(Exception) as caught:
        call()
    return str(caught.value)


# ---------------------------------------------------------------------------------------------------------------------
# The page itself
# ---------------------------------------------------------------------------------------------------------------------


def test_page_has_three_tabs_the_banner_and_only_allow_listed_presets(served) -> None:
    config = httpx.get(served[1] + "config", timeout=10).json()
    props = [c.get("props", {}) for c in config["components"]]
    labels = {p.get("label") for p in props}
    assert {"Recipe → illustrations", "Photo → edit / video", "Animate my recipe"} <= labels
    banner = next(p["value"] for p in props if p.get("elem_id") == "banner")
    assert banner.count(TINY_LABEL) == 2 and "`tiny`" in banner
    dropdowns = {p["elem_id"]: p for p in props if p.get("elem_id", "").endswith("-preset")}
    assert [v for _, v in dropdowns["recipe-preset"]["choices"]] == ["sdxl-lightning", "sdxl", "tiny"]
    assert [v for _, v in dropdowns["photo-preset"]["choices"]][-1] == "tiny"
    assert not any(p.get("allow_custom_value") for p in dropdowns.values())  # no typed paths or model ids
    examples = [p for p in props if p.get("label") == "The four recipes of the I2G paper's appendix"]
    assert len(examples) == 1 and len(examples[0]["samples"]) == 4


def test_help_answers_without_loading_anything() -> None:
    done = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--preset", "--showme-preset", "--lora-dir", "--port", "--host", "--share", "--download",
                   "--run-budget"):
        assert option in done.stdout


def test_python_app_py_starts_offline_with_no_arguments(tmp_path) -> None:
    """The README's `python app.py` as CI runs it: port from GRADIO_SERVER_PORT, no network, banner + URL printed."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while f"ready at http://127.0.0.1:{port}" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.3)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert page.status_code == 200 and "showme_i2g" in page.text
    assert f"Illustrations: tiny (⚠️ {TINY_LABEL})" in text


# ---------------------------------------------------------------------------------------------------------------------
# Tab 1: recipe -> illustrations
# ---------------------------------------------------------------------------------------------------------------------


def test_recipe_tab_gives_captioned_steps_and_three_downloads(client) -> None:
    gallery, downloads, animate_gallery = illustrate(client)
    assert [item["caption"] for item in gallery] == ["1. Boil the water.", "2. Pour it over the leaves.", "3. Wait."]
    for item in gallery:
        with Image.open(item["image"]) as image:
            assert image.format == "PNG" and image.size == (64, 64)
    assert animate_gallery == gallery  # the Animate tab shows the same steps

    storyboard, archive, page = map(Path, downloads)
    with Image.open(storyboard) as board:
        assert board.format == "PNG" and board.width > 3 * 64
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["run.json", "step_01.png", "step_02.png", "step_03.png", "storyboard.png"]
        record = json.loads(z.read("run.json"))
    assert record["goal"] == "Make tea" and record["steps"][1] == "Pour it over the leaves."
    assert (record["preset"], record["seed"], record["num_inference_steps"], record["height"]) == ("tiny", 0, 2, 64)
    html = page.read_text(encoding="utf-8")
    assert html.count('<img src="data:image/jpeg;base64,') == 3 and "Pour it over the leaves." in html


def test_same_seed_gives_the_same_pictures(client) -> None:
    first = illustrate(client, steps="Boil the water.")[0][0]["image"]
    second = illustrate(client, steps="Boil the water.")[0][0]["image"]
    assert Image.open(first).tobytes() == Image.open(second).tobytes()


def test_write_the_steps_fills_the_steps_box(client) -> None:
    text = client.predict("  Make   tea ", 3, 7, api_name="/plan")
    assert text.splitlines() == ["Make tea: part 1 (seed 7)", "Make tea: part 2 (seed 7)", "Make tea: part 3 (seed 7)"]
    assert "- goal_text: The goal is empty; please write a few words." in error_of(
        lambda: client.predict(" ", 3, 7, api_name="/plan"))


def test_the_planners_note_is_shown_when_it_writes_fewer_steps(tmp_path) -> None:
    notes = []
    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path, planner_factory=CannedPlanner,
                        tell=lambda message, level="warning": notes.append((level, message)))
    assert len(studio.plan("Make tea", 10, 0).splitlines()) == 8
    assert notes == [("warning", "The planner wrote 8 steps, not 10.")]
    assert len(studio.plan("Make tea", 4, 0).splitlines()) == 4 and len(notes) == 1


@pytest.mark.parametrize(
    ("goal", "steps", "message"),
    [
        ("", "Boil water.", "The goal is empty; please write a few words."),
        ("x" * 301, "Boil water.", "The goal is 301 characters long; please keep it under 300 characters."),
        ("Make tea", "  \n \n", "There are no steps; type at least one step or let the planner write them."),
        ("Make tea", "\n".join(f"Step {i}" for i in range(17)), "There are 17 steps; at most 16 can be illustrated"),
        ("Make tea", "Boil " * 500, "The text of step 1 is 2,499 characters long; please keep it under 2,000"),
    ],
)
def test_recipe_tab_refuses_bad_text_in_one_sentence(client, goal, steps, message) -> None:
    assert message in error_of(lambda: illustrate(client, goal=goal, steps=steps))


def test_recipe_tab_refuses_presets_that_are_not_on_the_list(served, client) -> None:
    """Gradio's dropdown refuses a value off its list while the validator reads the inputs, before the queue (its
    client shows only the HTTP status; the page never sends such a value)."""
    message = error_of(lambda: client.predict("Make tea", "Boil.", "/etc/passwd", 0, 2, 5.0, 64, 1.0,
                                              api_name="/illustrate"))
    assert "400 Bad Request" in message and "queue/join" in message
    assert all("/etc/passwd" not in key for key in served[0].models.loaded())  # keys: (family, name) or ("planner",)


def test_presets_without_weights_give_the_download_command_and_never_load(served, client, monkeypatch) -> None:
    """A request never starts a download: a preset whose weights are missing is refused before the queue, with the
    exact start-up command that fetches them."""
    from showme_i2g.i2g.pipeline import IllustrationPipeline
    from showme_i2g.showme.pipeline import ShowMePipeline

    def no_loading(*args, **kwargs):
        raise AssertionError("a request tried to load (and so download) a preset")

    monkeypatch.setattr(IllustrationPipeline, "from_preset", no_loading)
    monkeypatch.setattr(ShowMePipeline, "from_preset", no_loading)
    message = error_of(lambda: client.predict("Make tea", "Boil.", "sdxl", 0, 2, 5.0, 64, 1.0, api_name="/illustrate"))
    assert "- preset: The 'sdxl' preset's weights are not on this machine" in message
    assert "`python app.py --download --preset sdxl`" in message
    message = error_of(lambda: client.predict(handle_file(served[0].example_photos[0][0]), "Cut it", "edit",
                                              "dynamicrafter-256", 0, 2, 7.5, 4, 8, "crop", api_name="/photo"))
    assert "`python app.py --download --showme-preset dynamicrafter-256`" in message
    assert ("illustration", "sdxl") not in served[0].models.loaded()


def test_the_page_shows_the_command_for_a_preset_without_weights(served) -> None:
    choice = served[0].choice
    assert app.weights_note(choice, "illustration", "tiny") == ""
    note = app.weights_note(choice, "illustration", "sdxl-lightning")
    assert note.startswith("⚠️ The `sdxl-lightning` preset's weights are not on this machine")
    assert note.endswith("`python app.py --download --preset sdxl-lightning`.")
    assert "--showme-preset showme --lora-dir DIR" in app.weights_note(choice, "showme", "showme")


def test_recipe_tab_snaps_the_size_to_the_slider_and_refuses_sizes_outside_it(served, client) -> None:
    gallery = illustrate(client, steps="Boil the water.", size=100)[0]  # between the slider's steps of 64
    with Image.open(gallery[0]["image"]) as image:
        assert image.size == (128, 128)
    # Past the CPU's slider (512 px, 50 steps): Gradio's slider refuses it before the queue; the studio's own check,
    # for callers without the page, names the slider's range rather than the model's.
    assert "400 Bad Request" in error_of(lambda: illustrate(client, size=1024))
    studio = served[0]
    with pytest.raises(app.Refusal,
                       match=r"^The image size must be from 64 to 512 pixels on this machine, got 1024\.$"):
        studio.check_recipe("Make tea", "Boil.", "tiny", 0, 2, 5.0, 1024, 1.0)
    with pytest.raises(app.Refusal, match=r"^Inference steps must be a whole number from 1 to 50, got 80\.$"):
        studio.check_recipe("Make tea", "Boil.", "tiny", 0, 80, 5.0, 64, 1.0)


def test_the_sliders_offer_this_machines_limits(served) -> None:
    config = httpx.get(served[1] + "config", timeout=10).json()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    limits = served[0].limits
    assert (limits.device, limits.max_size, limits.max_inference_steps, limits.max_frames) == ("cpu", 512, 50, 16)
    assert props["recipe-size"]["maximum"] == 512 and props["recipe-size"]["step"] == 64
    assert props["recipe-steps"]["maximum"] == 50


# ---------------------------------------------------------------------------------------------------------------------
# Tab 2: photo -> edit / video
# ---------------------------------------------------------------------------------------------------------------------


def test_photo_tab_makes_the_edit_the_video_and_the_gif(served, client) -> None:
    kitchen = served[0].example_photos[0][0]  # 512 x 384, drawn by the app
    edited, video, files = photo(client, kitchen, frames=5, fit="pad")
    with Image.open(edited) as image:
        assert image.format == "PNG" and image.size == (64, 48)  # the photo's 4:3 aspect, at the model's 64 px
    mp4_frames = read_video_frames(video)
    assert len(mp4_frames) == 5 and mp4_frames[0].shape == (48, 64, 3)
    names = [Path(f).name for f in files]
    assert names == ["edited.png", "video.gif", "run.json"]
    assert len(read_video_frames(files[1])) >= 2  # Pillow merges identical GIF frames; the MP4 keeps all 5
    record = json.loads(Path(files[2]).read_text())
    assert record["edit"]["mode"] == "image" and record["video"]["mode"] == "video"
    assert record["video"]["num_frames"] == 5 and record["video"]["fps"] == 8 and record["photo_size"] == [384, 512]


@pytest.mark.parametrize(("mode", "has_edit", "has_video"), [("edit", True, False), ("video", False, True)])
def test_photo_tab_makes_only_what_was_asked(served, client, mode, has_edit, has_video) -> None:
    edited, video, files = photo(client, served[0].example_photos[1][0], mode=mode, frames=3)
    assert (edited is not None, video is not None) == (has_edit, has_video)
    assert len(files) == 1 + has_edit + has_video


def test_photo_tab_refuses_files_that_are_not_pictures(client, tmp_path) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture")
    assert "- image: 'holiday.png' is not a picture we can open; please use a JPEG, PNG or WebP photo." in error_of(
        lambda: photo(client, fake))


def test_photo_tab_refuses_huge_pictures_before_decoding_them(client, tmp_path) -> None:
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000), 200).save(huge, optimize=True)  # 48 megapixels, a small file
    assert ("- image: The photo is 8000x6000 (48 megapixels), which is too large; please use one under 40 megapixels."
            in error_of(lambda: photo(client, huge)))


@pytest.mark.parametrize(
    ("instruction", "message"),
    [("   ", "The instruction is empty; please write a few words."),
     ("cut " * 200, "The instruction is 799 characters long; please keep it under 500 characters.")],
)
def test_photo_tab_refuses_bad_instructions(served, client, instruction, message) -> None:
    assert f"- instruction: {message}" in error_of(
        lambda: photo(client, served[0].example_photos[0][0], instruction=instruction))


def test_photo_tab_without_a_photo(client) -> None:
    message = error_of(lambda: client.predict(None, "Cut it", "edit", "tiny", 0, 2, 7.5, 4, 8, "crop",
                                              api_name="/photo"))
    assert "- image: Please add a photo first: upload one or take one with the webcam." in message


# ---------------------------------------------------------------------------------------------------------------------
# Tab 3: animate my recipe
# ---------------------------------------------------------------------------------------------------------------------


def test_animate_tab_makes_one_clip_per_step_and_a_captioned_video(client) -> None:
    illustrate(client, steps="Boil the water.\nPour it over the leaves.")
    stitched, files = client.predict("tiny", 0, 2, 7.5, 3, 8, api_name="/animate_recipe")
    frames = read_video_frames(stitched)
    assert len(frames) == 2 * 3 and frames[0].shape[1] >= 384  # scaled up so the captions can be read
    archive, *clips = map(Path, files)
    assert [c.name for c in clips] == ["clip_01.mp4", "clip_02.mp4"]
    assert all(len(read_video_frames(c)) == 3 for c in clips)
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["clip_01.mp4", "clip_02.mp4", "recipe_video.mp4", "run.json"]
        record = json.loads(z.read("run.json"))
    assert [c["instruction"] for c in record["clips"]] == ["Boil the water.", "Pour it over the leaves."]
    assert [c["batch_size"] for c in record["clips"]] == [2, 2]  # both clips sampled together (animate_many)
    assert record["illustrations"]["preset"] == "tiny" and record["fps"] == 8
    # The caption band: the bottom of a stitched frame is dark and has white text; the clip frame has neither.
    bottom = frames[0][-12:]
    assert bottom.mean() < 90 and bottom.max() > 200


def test_animate_tab_needs_a_recipe_first(client) -> None:
    assert "- run: There are no step images yet; illustrate a recipe on the first tab, then come back." in error_of(
        lambda: client.predict("tiny", 0, 2, 7.5, 3, 8, api_name="/animate_recipe"))


# ---------------------------------------------------------------------------------------------------------------------
# Progress and Stop
# ---------------------------------------------------------------------------------------------------------------------


LONG_RECIPE = "\n".join(f"Step {i}: stir the pot." for i in range(1, 17))
TINY_MODEL = ("illustration", "tiny")


def start_long_run(client):
    """16 steps x 50 denoising steps at 256 px on the tiny model: a minute or so on a CPU, about a second a step."""
    return client.submit("Make soup", LONG_RECIPE, "tiny", 0, 50, 5.0, 256, 1.0, api_name="/illustrate")


def seconds_per_step(job, deadline: float) -> float:
    """How long the running ``job`` takes for one denoising step now (the machine may be shared)."""
    first = wait_for_denoising(job, deadline)[0].index
    while wait_for_denoising(job, deadline)[0].index == first:
        pass
    started, second = time.monotonic(), wait_for_denoising(job, deadline)[0].index
    while wait_for_denoising(job, deadline)[0].index == second:
        pass
    return time.monotonic() - started


def wait_for_denoising(job, deadline: float) -> list:
    """The progress units of ``job`` once it reports its first denoising step."""
    while time.monotonic() < deadline:
        units = [p for p in (job.status().progress_data or []) if "denoising" in (p.desc or "") and p.index]
        if units:
            return units
        time.sleep(0.05)
    raise AssertionError("the run never reported a denoising step")


def wait_until_free(studio, deadline: float) -> float:
    """Seconds until the tiny model's slot is free and no run is registered."""
    started = time.monotonic()
    while (studio.models.busy(TINY_MODEL) or studio.running.running()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not studio.models.busy(TINY_MODEL) and not studio.running.running()
    return time.monotonic() - started


def test_progress_moves_with_the_denoising_steps_and_stop_ends_the_run(served, client) -> None:
    studio, _ = served
    job = start_long_run(client)
    deadline = time.monotonic() + 90
    units = wait_for_denoising(job, deadline)
    assert units[0].desc == "Illustrating 16 steps: denoising" and units[0].length == 50 and units[0].unit == "steps"
    later = wait_for_denoising(job, deadline)
    while later[0].index == units[0].index and time.monotonic() < deadline:
        later = wait_for_denoising(job, deadline)
    assert later[0].index > units[0].index  # the bar follows the steps
    assert studio.models.busy(TINY_MODEL)

    step = seconds_per_step(job, deadline)
    client.predict(api_name="/stop")
    assert wait_until_free(studio, deadline) < 2 * step + 1  # within about one step; the run would take 50
    # The next run of the same session is not stopped by the earlier Stop.
    assert len(illustrate(client, steps="Taste it.")[0]) == 1


def test_a_cancelled_client_ends_its_run_and_frees_the_slot(served, client) -> None:
    studio, _ = served
    job = start_long_run(client)
    deadline = time.monotonic() + 90
    step = seconds_per_step(job, deadline)
    job.cancel()  # what a client that gives up does: gradio cancels the task, the app stops the run
    assert wait_until_free(studio, deadline) < 2 * step + 1
    assert len(illustrate(client, steps="Taste it.")[0]) == 1  # the next request runs at once


def test_a_closed_page_ends_its_runs(served, client) -> None:
    """A page keeps a heartbeat stream open; when it closes, gradio calls ``demo.unload``, which stops the session's
    runs. The stream is opened here as the browser opens it (the browser test closes a real page)."""
    studio, url = served
    job = start_long_run(client)
    deadline = time.monotonic() + 90
    step = seconds_per_step(job, deadline)
    with httpx.stream("GET", f"{url}gradio_api/heartbeat/{client.session_hash}", timeout=10) as heartbeat:
        assert heartbeat.status_code == 200
        next(heartbeat.iter_lines())
    assert wait_until_free(studio, deadline) < 2 * step + 2
    with pytest.raises(AppError, match=r"^Stopped: the run was cancelled before it finished\.$"):
        job.result(timeout=30)


def test_a_bad_input_is_refused_without_waiting_behind_a_running_job(served, client) -> None:
    studio, url = served
    job = start_long_run(client)
    deadline = time.monotonic() + 90
    wait_for_denoising(job, deadline)
    other = Client(url, verbose=False)  # another user, while the only model slot is taken
    started = time.monotonic()
    message = error_of(lambda: other.predict("", "Boil water.", "tiny", 0, 2, 5.0, 64, 1.0, api_name="/illustrate"))
    waited = time.monotonic() - started
    assert "- goal: The goal is empty; please write a few words." in message
    assert studio.models.busy(TINY_MODEL) and not job.done()  # refused while the slow job still runs
    assert waited < 5
    # A good request waits in the queue, and says where it stands, until the slot is free.
    queued = other.submit("Make tea", "Boil water.", "tiny", 0, 2, 5.0, 64, 1.0, api_name="/illustrate")
    status = queued.status()
    while status.code.name in ("STARTING", "JOINING_QUEUE") and time.monotonic() < deadline:
        time.sleep(0.05)
        status = queued.status()
    assert status.code.name == "IN_QUEUE" and status.rank == 0 and status.queue_size >= 1
    client.predict(api_name="/stop")
    assert len(queued.result(timeout=60)[0]) == 1
    wait_until_free(studio, deadline)


def test_a_run_that_spends_its_budget_ends_itself_with_a_sentence(tmp_path) -> None:
    from showme_i2g.app.hardware import HardwareLimits

    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path,
                        limits=HardwareLimits.for_device("cpu", budget_s=1.0))
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        studio.illustrate("Make soup", LONG_RECIPE, "tiny", 0, 50, 5.0, 512, 1.0)
    assert caught.value.message == ("The run used up its 1-second budget on this machine and was ended; try fewer "
                                 "steps, fewer frames or a smaller size.")
    assert time.monotonic() - started < 30 and not studio.models.busy(TINY_MODEL)


def test_an_animated_photo_is_used_with_a_note_on_the_page(tmp_path) -> None:
    notes = []
    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path / "runs",
                        tell=lambda message, level="warning": notes.append((level, message)))
    frames = [Image.new("RGB", (96, 64), color) for color in ("red", "green", "blue")]
    gif = tmp_path / "stir.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    edited, video, files = studio.photo(str(gif), "Stir the pot", "edit", "tiny", 0, 2, 7.5, 4, 8, "pad")
    assert notes == [("warning", "'stir.gif' is animated (3 frames); using its first frame.")]
    with Image.open(edited) as image:
        assert image.size == (64, 43)  # pad: the photo's 3:2 shape


def test_crop_gives_the_centre_at_the_models_shape_and_pad_the_photos_shape(served, client) -> None:
    kitchen = served[0].example_photos[0][0]  # 512 x 384
    cropped = photo(client, kitchen, mode="edit", fit="crop")[0]
    padded = photo(client, kitchen, mode="edit", fit="pad")[0]
    assert Image.open(cropped).size == (64, 64) and Image.open(padded).size == (64, 48)


def test_download_refuses_offline_in_one_sentence_before_serving(capsys) -> None:
    assert app.main(["--download", "--preset", "sdxl", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --download needs the Hugging Face Hub, but HF_HUB_OFFLINE is set; unset it, or copy the "
                   "weights into this machine's Hugging Face cache.\n")
    assert app.main(["--download", "--port", "1"]) == 2
    assert "There is nothing to download" in capsys.readouterr().err
    assert app.main(["--run-budget", "-5", "--port", "1"]) == 2
    assert capsys.readouterr().err == "error: --run-budget must be a positive number of seconds, got -5.\n"


def test_download_without_a_network_fails_in_one_sentence_and_serves_nothing(tmp_path) -> None:
    closed = _free_port()  # nothing listens there: the hub cannot be reached
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{closed}",
           "HF_HOME": str(tmp_path / "hf"), "GRADIO_SERVER_PORT": str(_free_port())}
    done = subprocess.run([sys.executable, "app.py", "--download", "--preset", "sdxl-lightning"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 2 and "ready at" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("error: Could not download stabilityai/stable-diffusion-xl-base-1.0 for the 'sdxl-lightning' "
                    "preset: the Hugging Face Hub could not be reached.")


def test_zero_gpu_durations_come_from_the_request(monkeypatch) -> None:
    """``spaces.GPU(duration=fn)`` gets a function of the call's own arguments (ZeroGPU's dynamic duration)."""
    from showme_i2g.app.hardware import gpu_seconds

    asked = []

    class FakeSpaces:
        @staticmethod
        def GPU(duration):
            asked.append(duration)
            return lambda fn: fn

    monkeypatch.setattr(app, "spaces", FakeSpaces)
    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu")
    app.build_demo(studio)
    plan, recipe, redraw, photo_, animate = asked
    assert plan == 60
    short = recipe("Make tea", "Boil.", "sdxl", 0, 4, 0.0, 1024, 1.0, None, "none", 1.0, "session")
    long = recipe("Make tea", LONG_RECIPE, "sdxl", 0, 30, 7.5, 1024, 1.0, None, "none", 1.0, "session")
    assert 30 <= short < long <= 300
    with_kitchen = recipe("Make tea", LONG_RECIPE, "sdxl", 0, 30, 7.5, 1024, 1.0, "kitchen.jpg", "reference", 1.0,
                          "s")
    assert long <= with_kitchen  # the photo is one more image in the batch
    last = {"images": ["a.png"] * 7, "metadata": {"num_inference_steps": 30, "height": 1024, "guidance_scale": 7.5}}
    expected = gpu_seconds("recipe", items=7, inference_steps=30, size=1024, guidance=7.5)
    assert redraw(last, "steps", 3, 5, "s") == expected
    assert photo_(None, "Cut it", "edit", "showme", 0, 50, 7.5, 16, 8, "crop", "s") < photo_(
        None, "Cut it", "both", "showme", 0, 50, 7.5, 16, 8, "crop", "s")
    run = {"images": ["a.png"] * 7}
    assert animate(run, "showme", 0, 50, 7.5, 16, 8, "s") == gpu_seconds("animate", items=7, inference_steps=50)


def test_trained_adapter_flags_and_env_reach_the_models_and_the_banner(tmp_path, monkeypatch) -> None:
    """--lora / --edit-adapter / --animate-adapter (or their env variables) are given to every model load."""
    from showme_i2g.app.presets import PresetChoice

    lora, edit = tmp_path / "lora", tmp_path / "edit.safetensors"
    monkeypatch.setenv("SHOWME_EDIT_ADAPTER", str(edit))
    monkeypatch.delenv("SHOWME_LORA", raising=False)
    monkeypatch.delenv("SHOWME_ANIMATE_ADAPTER", raising=False)
    args = app.build_parser().parse_args(["--lora", str(lora)])
    trained = app.TrainedAdapters.from_args(args)
    assert trained == app.TrainedAdapters(lora=lora, edit=edit, animate=None)
    assert app.main(["--lora", str(lora), "--port", "1"]) == 2  # nothing there yet: refused before any page starts
    choice = pick_presets("tiny", "tiny")
    assert isinstance(choice, PresetChoice)
    banner = app.full_banner(choice, trained)
    assert "**Trained I2G LoRA:** `lora`" in banner and "**Trained ShowMe adapters:** edit `edit.safetensors`" in banner
    assert str(tmp_path) not in banner  # file names only, never this machine's folders
    assert app.full_banner(choice, app.TrainedAdapters()) == app.banner_markdown(choice)


def test_studio_loads_its_models_with_the_trained_adapters(tmp_path) -> None:
    """The model cache's loaders pass the files on: the ShowMe model holds the edit adapter at the file's rank."""
    import torch

    from showme_i2g.showme import adapters
    from showme_i2g.showme.dynamicrafter.config import CONFIGS
    from showme_i2g.showme.pipeline import build_random_model

    model = build_random_model(CONFIGS["tiny"])
    adapters.add_showme_adapters(model, edit_rank=2, animate_rank=2)
    with torch.no_grad():
        for _, layer in adapters._lora_layers(model, "edit"):
            layer.lora_B["edit"].weight.fill_(0.25)
    edit = tmp_path / "edit.safetensors"
    adapters.save_adapter(model, "edit", edit)
    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path / "runs",
                        adapters=app.TrainedAdapters(edit=edit))
    with studio._showme("tiny") as pipe:
        assert pipe.adapter_files == {"edit": str(edit)} and adapters.adapter_rank(pipe.model, "edit") == 2
        first = next(layer for _, layer in adapters._lora_layers(pipe.model, "edit"))
        assert torch.all(first.lora_B["edit"].weight == 0.25)


def test_a_stop_ends_the_run_between_the_pictures_it_decodes(tmp_path) -> None:
    """The pipeline's ``callback_on_decode`` reports each picture and stops the run between one and the next."""
    studio = app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path)
    seen = []

    def progress(value, desc=None, unit=None) -> None:
        seen.append((desc, value))
        if desc == "Decoding the pictures" and value == (2, 5):
            studio.stop("me")  # the page's Stop, pressed while the third picture is about to be decoded

    steps = "\n".join(f"Stir the pot, round {i}." for i in range(1, 6))
    with pytest.raises(Exception) as caught:
        studio.illustrate("Make soup", steps, "tiny", 0, 2, 5.0, 64, 1.0, session="me", progress=progress)
    assert caught.value.message == "Stopped: the run was cancelled before it finished."
    decoding = [value for desc, value in seen if desc == "Decoding the pictures"]
    assert decoding == [(0, 5), (1, 5), (2, 5)]  # pictures 4 and 5 were never decoded
    assert [desc for desc, _ in seen][:2] == ["Loading the 'tiny' model", "Illustrating 5 steps: denoising"]
    assert not studio.models.busy(TINY_MODEL) and not studio.running.running()
