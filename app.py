"""showme_i2g in the browser: recipe -> illustrations, photo -> edit / video, and a recipe animated step by step.

    python app.py [--preset NAME] [--showme-preset NAME] [--lora-dir DIR] [--port N] [--host H] [--share]
                  [--lora FILE] [--edit-adapter FILE] [--animate-adapter FILE]

Trained adapters (``--lora`` for the illustrations, ``--edit-adapter`` / ``--animate-adapter`` for photo edits and
videos) are chosen when the app starts, never typed into the page; every model the app loads uses them.

This file only builds the page, checks what people type and hands it to the library (``IllustrationPipeline``,
``ShowMePipeline``, ``StepPlanner``); files are written by ``showme_i2g.media`` and ``showme_i2g.app_support``.
Gradio and torch are imported only once the arguments are parsed, so ``--help`` answers at once.
On a Hugging Face Space, the ``spaces`` package (when installed) gives each heavy call a GPU with ``spaces.GPU``.
"""

import argparse
import dataclasses
import functools
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from showme_i2g.app_support import (
    ILLUSTRATION_ORDER,
    SHOWME_ORDER,
    ModelCache,
    PresetChoice,
    RunFolders,
    RunStopped,
    StopRegistry,
    banner_markdown,
    fit_instruction,
    make_example_photos,
    pick_presets,
    preset_choices,
    write_animation_outputs,
    write_recipe_outputs,
    write_run_json,
)
from showme_i2g.errors import InvalidInputError, ShowMeError
from showme_i2g.presets import ILLUSTRATION_PRESETS, SHOWME_PRESETS
from showme_i2g.text.step_lines import parse_step_lines, steps_to_text
from showme_i2g.validation import check_number

RECIPES_FILE = Path(__file__).resolve().parent / "examples" / "i2g_appendix_recipes.json"
MAX_SEED = 2**31 - 1
MAX_PLANNED_STEPS = 12
MAX_UPLOAD = "25mb"

try:  # Hugging Face Spaces (ZeroGPU): a GPU is attached for the length of each decorated call
    import spaces
except ImportError:
    spaces = None


def gpu(duration: int) -> Callable:
    """``spaces.GPU(duration=...)`` on a Space that has the ``spaces`` package; elsewhere nothing."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="The showme_i2g web app: recipe -> illustrations, photo -> edit / video, recipe -> videos.",
        epilog="Without --preset / --showme-preset the best presets whose weights are in the local Hugging Face cache "
        "run (never downloading); with none there, the untrained tiny presets run, and the page says so.",
    )
    parser.add_argument("--preset", choices=ILLUSTRATION_ORDER, default=env("SHOWME_PRESET") or None,
                        help="illustration preset (env SHOWME_PRESET; default: best one present)")
    parser.add_argument("--showme-preset", choices=SHOWME_ORDER, default=env("SHOWME_SHOWME_PRESET") or None,
                        help="photo edit / video preset (env SHOWME_SHOWME_PRESET; default: best one present)")
    parser.add_argument("--lora-dir", type=Path, default=env("SHOWME_LORA_DIR") or None,
                        help="folder with the ShowMe LoRA files lora_image.pth, lora_video.pth (env SHOWME_LORA_DIR)")
    parser.add_argument("--lora", type=Path, default=env("SHOWME_LORA") or None,
                        help="a trained I2G LoRA (file or its lora/ folder) for the illustrations (env SHOWME_LORA)")
    parser.add_argument("--edit-adapter", type=Path, default=env("SHOWME_EDIT_ADAPTER") or None,
                        help="a trained edit adapter, edit.safetensors (env SHOWME_EDIT_ADAPTER)")
    parser.add_argument("--animate-adapter", type=Path, default=env("SHOWME_ANIMATE_ADAPTER") or None,
                        help="a trained animate adapter, animate.safetensors (env SHOWME_ANIMATE_ADAPTER)")
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME") or ("0.0.0.0" if env("SPACE_ID") else "127.0.0.1"),
                        help="address to serve on (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT") or 0) or None,
                        help="port (env GRADIO_SERVER_PORT; default: the first free one from 7860)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--runs-dir", type=Path, help="where run outputs go (default: showme-i2g-app in the temp dir)")
    return parser


def load_recipes(path: Path = RECIPES_FILE) -> list[dict]:
    """The four recipes of the I2G appendix: ``[{"goal": ..., "steps": [...]}, ...]``."""
    return json.loads(path.read_text(encoding="utf-8"))["recipes"]


# ---------------------------------------------------------------------------------------------------------------------
# The studio: models shared by every user, and what each button does
# ---------------------------------------------------------------------------------------------------------------------


def user_errors(fn: Callable) -> Callable:
    """Turn the library's one-sentence errors (and a Stop, and GPU out-of-memory) into ``gr.Error`` for the page."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import gradio as gr

        try:
            return fn(*args, **kwargs)
        except ShowMeError as error:
            raise gr.Error(str(error), print_exception=False) from error
        except RunStopped as error:
            raise gr.Error("Stopped: the run was cancelled before it finished.", print_exception=False) from error
        except Exception as error:
            if type(error).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch here
                raise gr.Error("The GPU ran out of memory; try fewer steps, frames or a smaller size.") from error
            raise

    return wrapper


def _session(request) -> str:
    return getattr(request, "session_hash", None) or ""


@dataclasses.dataclass(frozen=True)
class TrainedAdapters:
    """Adapter files trained with ``train/`` that every model the app loads uses (chosen at start, not in the page)."""

    lora: Path | None = None  # I2G LoRA for the illustrations
    edit: Path | None = None  # ShowMe edit adapter
    animate: Path | None = None  # ShowMe animate adapter

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainedAdapters":
        return cls(lora=args.lora, edit=args.edit_adapter, animate=args.animate_adapter)

    @property
    def complete(self) -> bool:
        """Both ShowMe adapters are ours, so the ``showme`` preset needs none of the authors' LoRA files."""
        return self.edit is not None and self.animate is not None

    def check(self) -> None:
        """Refuse a path that does not exist at start rather than at the first click (the files load lazily)."""
        for flag, path in (("--lora", self.lora), ("--edit-adapter", self.edit), ("--animate-adapter", self.animate)):
            if path is not None and not path.exists():
                raise InvalidInputError(f"{flag} {path}: there is no such file or folder.")

    def banner(self) -> str:
        """Banner lines naming the loaded files (their names only: the page does not show this machine's folders)."""
        lines = []
        if self.lora is not None:
            lines.append(f"**Trained I2G LoRA:** `{self.lora.name}`")
        named = [f"{kind} `{path.name}`" for kind, path in (("edit", self.edit), ("animate", self.animate)) if path]
        if named:
            lines.append(f"**Trained ShowMe adapters:** {', '.join(named)}")
        return "  \n".join(lines)


def full_banner(choice: PresetChoice, trained: TrainedAdapters) -> str:
    """The presets' banner, then the trained adapter files in use."""
    return "  \n".join(part for part in (banner_markdown(choice), trained.banner()) if part)


class Studio:
    """Everything the buttons share: the chosen presets, the models (each loaded once, on first use), Stop, folders.

    ``planner_factory`` builds the step planner on first use (default: ``StepPlanner.default``, the offline GGUF).
    """

    def __init__(
        self,
        choice: PresetChoice,
        *,
        device: str | None = None,
        lora_dir: str | os.PathLike | None = None,
        runs_dir: str | os.PathLike | None = None,
        planner_factory: Callable[[], Any] | None = None,
        adapters: TrainedAdapters | None = None,
    ) -> None:
        self.choice = choice
        self.device = device
        self.lora_dir = lora_dir
        self.adapters = adapters or TrainedAdapters()
        self.models = ModelCache()
        self.stops = StopRegistry()
        self.runs = RunFolders(runs_dir)
        self.planner_factory = planner_factory
        self.example_photos = make_example_photos(self.runs.root / "examples")

    # ------------------------------------------------------------------ models
    def _make_room(self, key: tuple) -> None:
        """One model per family: loading another preset frees the one it replaces (one GPU holds one SDXL)."""
        if self.models.evict(lambda other: other[0] != key[0] or other == key):
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _illustrator(self, name: str):
        if name not in ILLUSTRATION_PRESETS:
            raise InvalidInputError(f"Unknown preset {name!r}; choose one from the list.")

        def load():
            from showme_i2g.i2g.pipeline import IllustrationPipeline

            self._make_room(("illustration", name))
            pipe = IllustrationPipeline.from_preset(name, device=self.device, lora=self.adapters.lora)
            pipe.set_progress_bar_config(disable=True)
            return pipe

        return self.models.use(("illustration", name), load)

    def _showme(self, name: str):
        if name not in SHOWME_PRESETS:
            raise InvalidInputError(f"Unknown ShowMe preset {name!r}; choose one from the list.")

        def load():
            from showme_i2g.showme.pipeline import ShowMePipeline

            self._make_room(("showme", name))
            pipe = ShowMePipeline.from_preset(name, device=self.device, lora_dir=self.lora_dir,
                                              edit_adapter=self.adapters.edit, animate_adapter=self.adapters.animate)
            pipe.progress_bar = False
            return pipe

        return self.models.use(("showme", name), load)

    def _planner(self):
        def load():
            if self.planner_factory is not None:
                return self.planner_factory()
            from showme_i2g.text.planner import StepPlanner

            return StepPlanner.default(device=self.device)

        return self.models.use(("planner",), load)

    def _reporter(self, progress, token, desc: str, offset: int = 0, grand_total: int | None = None):
        """A pipeline ``progress_callback`` that moves the page's bar and ends the run once Stop was pressed."""

        def callback(done: int, total: int) -> None:
            if self.stops.stopped(token):
                raise RunStopped
            progress((offset + done, grand_total or total), desc=desc, unit="steps")

        return callback

    # ------------------------------------------------------------------ buttons
    @user_errors
    def plan(self, goal: str, max_steps: float, seed: float, progress=None) -> str:
        """"Write the steps": the planner's steps for the goal, one per line, for the user to edit."""
        from showme_i2g.i2g.inputs import clean_goal

        goal = clean_goal(goal)
        max_steps, seed = _whole(max_steps, "The number of steps", 1, MAX_PLANNED_STEPS), _seed(seed)
        if progress is not None:
            progress(0, desc="Loading the step planner")
        with self._planner() as planner:
            if progress is not None:
                progress(0.5, desc="Writing the steps")
            return steps_to_text(planner.plan(goal, max_steps=max_steps, seed=seed))

    @user_errors
    def illustrate(self, goal, steps_text, preset, seed, inference_steps, guidance, size, neighbour_weight,
                   session: str = "", progress=None):
        """Recipe -> one image per step; returns (gallery items, download files, the run for the Animate tab)."""
        from showme_i2g.i2g.inputs import clean_goal, clean_steps

        goal = clean_goal(goal)
        steps = clean_steps(parse_step_lines(steps_text))
        seed, inference_steps, size = _seed(seed), _whole(inference_steps, "Inference steps", 1, 200), _whole(
            size, "The image size", 64, 2048)
        token = self.stops.token(session)
        progress = _no_progress if progress is None else progress
        progress(0, desc=f"Loading the '{preset}' model")
        with self._illustrator(preset) as pipe:
            result = pipe(goal, steps, seed=seed, num_inference_steps=inference_steps, guidance_scale=float(guidance),
                          height=size, width=size, neighbour_weight=float(neighbour_weight),
                          progress_callback=self._reporter(progress, token, "Illustrating every step"))
        progress(1, desc="Writing the storyboard and downloads")
        files = write_recipe_outputs(result, self.runs.new("recipe"))
        gallery = [(str(path), f"{n}. {step}") for n, (path, step) in enumerate(zip(files.steps, result.steps), 1)]
        run = {"goal": result.goal, "steps": result.steps, "images": [str(p) for p in files.steps],
               "metadata": result.metadata}
        return gallery, [str(files.storyboard), str(files.zip), str(files.html)], run

    @user_errors
    def photo(self, image_path, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit,
              session: str = "", progress=None):
        """Photo + instruction -> (edited photo or None, MP4 or None, download files)."""
        from showme_i2g.media import load_photo, save_video
        from showme_i2g.showme.pipeline import MAX_FRAMES, MAX_INSTRUCTION_CHARS
        from showme_i2g.validation import clean_text

        if not image_path:
            raise InvalidInputError("Please add a photo first: upload one or take one with the webcam.")
        instruction = clean_text(instruction, "instruction", MAX_INSTRUCTION_CHARS)
        if mode not in ("edit", "video", "both"):
            raise InvalidInputError("Choose what to make: the edited photo, the video or both.")
        if fit not in ("crop", "pad"):
            raise InvalidInputError("Choose how to fit the photo: crop or pad.")
        photo = load_photo(image_path)  # refuses non-images and huge pictures before any model loads
        seed, inference_steps = _seed(seed), _whole(inference_steps, "Inference steps", 1, 1000)
        frames, fps = _whole(frames, "The number of frames", 2, MAX_FRAMES), _whole(fps, "Frames per second", 1, 60)
        token = self.stops.token(session)
        progress = _no_progress if progress is None else progress
        passes = ["edit"] * (mode != "video") + ["video"] * (mode != "edit")
        folder = self.runs.new("photo")
        edited = video = None
        record: dict = {"instruction": instruction, "photo_size": [photo.height, photo.width]}
        files: list[str] = []
        progress(0, desc=f"Loading the '{preset}' model")
        with self._showme(preset) as pipe:
            for index, kind in enumerate(passes):
                report = self._reporter(progress, token, "Editing the photo" if kind == "edit" else "Making the video",
                                        offset=index * inference_steps, grand_total=len(passes) * inference_steps)
                options = dict(seed=seed, num_inference_steps=inference_steps, guidance_scale=float(guidance),
                               fit=fit, progress_callback=report)
                if kind == "edit":
                    result = pipe.edit(photo, instruction, **options)
                    edited = str(folder / "edited.png")
                    result.image.save(edited)
                    files.append(edited)
                    record["edit"] = result.metadata
                else:
                    result = pipe.animate(photo, instruction, num_frames=frames, **options)
                    video = str(save_video(result.frames, folder / "video.mp4", fps=fps))
                    files.append(str(save_video(result.frames, folder / "video.gif", fps=fps)))
                    record["video"] = {**result.metadata, "fps": fps}
        files.append(str(write_run_json(folder / "run.json", record)))
        return edited, video, files

    @user_errors
    def animate_recipe(self, run, preset, seed, inference_steps, guidance, frames, fps, session: str = "",
                       progress=None):
        """Every step image of the last recipe run -> a clip of its step; returns (stitched MP4, download files)."""
        from showme_i2g.showme.pipeline import MAX_FRAMES, MAX_INSTRUCTION_CHARS

        if not run or not run.get("images"):
            raise InvalidInputError("There are no step images yet; illustrate a recipe on the first tab, then come back.")
        seed, inference_steps = _seed(seed), _whole(inference_steps, "Inference steps", 1, 1000)
        frames, fps = _whole(frames, "The number of frames", 2, MAX_FRAMES), _whole(fps, "Frames per second", 1, 60)
        token = self.stops.token(session)
        progress = _no_progress if progress is None else progress
        steps = run["steps"]
        instructions = [fit_instruction(step, MAX_INSTRUCTION_CHARS) for step in steps]
        progress(0, desc=f"Loading the '{preset}' model")
        with self._showme(preset) as pipe:
            # every step's clip in one batched sampling loop (chunks that fit the GPU), each with the run's seed
            report = self._reporter(progress, token, f"Animating all {len(steps)} steps")
            results = pipe.animate_many(run["images"], instructions, seeds=[seed] * len(steps), num_frames=frames,
                                        num_inference_steps=inference_steps, guidance_scale=float(guidance),
                                        progress_callback=report)
        clips, metadata = [r.frames for r in results], [r.metadata for r in results]
        progress(1, desc="Writing the clips and the stitched video")
        record = {"goal": run["goal"], "steps": steps, "illustrations": run["metadata"], "clips": metadata, "fps": fps}
        files = write_animation_outputs(clips, steps, self.runs.new("animate"), fps, record)
        return str(files.stitched), [str(files.zip), *map(str, files.clips)]

    def stop(self, session: str) -> None:
        """Stop every run of this browser session at its next denoising step."""
        self.stops.stop(session)


def _no_progress(*args, **kwargs) -> None:
    """Progress sink for calls without a page (tests, scripts)."""


def _whole(value, name: str, low: int, high: int) -> int:
    """A whole number from a slider or number box (which may send 4.0), checked against [low, high]."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    check_number(value, name, low, high, integer=True)
    return value


def _seed(value) -> int:
    return _whole(value, "The seed", 0, MAX_SEED)


# ---------------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------------

_CSS = """
#banner {border: 1px solid #e3b341; border-radius: 8px; padding: 0.4rem 0.9rem; background: #fff8e1}
#banner p {margin: 0.15rem 0}
#edited img {width: 100%; height: 100%; object-fit: contain}
"""


def _photo_input(gr, **kwargs):
    """A ``gr.Image`` that hands over the uploaded file untouched, so that ``load_photo`` checks it (not a picture,
    huge, damaged) and says what is wrong in one sentence, where Gradio's own decoding fails with a bare "Error".

    The override is set on the instance: a ``gr.Image`` subclass would make Gradio write an ``app.pyi`` stub file
    next to this one at import time.
    """
    photo = gr.Image(type="filepath", **kwargs)
    photo.preprocess = lambda payload: None if payload is None else payload.path
    return photo


def build_demo(studio: Studio):
    """The Blocks: a banner saying which models run, then three tabs."""
    import gradio as gr

    choice = studio.choice
    illustration_default = ILLUSTRATION_PRESETS[choice.illustration]
    showme_default = SHOWME_PRESETS[choice.showme]
    heavy = dict(concurrency_limit=1, concurrency_id="models")  # one model call at a time: sensible for one GPU

    def showme_options(prefix: str, frames_default: int):
        preset = gr.Dropdown(preset_choices(SHOWME_ORDER, choice.showme_available), value=choice.showme,
                             label="Model preset", elem_id=f"{prefix}-preset")
        with gr.Row():
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            steps = gr.Slider(1, 100, value=showme_default.num_inference_steps, step=1, label="Inference steps")
            guidance = gr.Slider(1, 15, value=showme_default.guidance_scale, step=0.5, label="Guidance")
        with gr.Row():
            frames = gr.Slider(2, 32, value=frames_default, step=1, label="Frames")
            fps = gr.Slider(1, 30, value=8, step=1, label="Frames per second")
        preset.change(lambda name: gr.update(value=SHOWME_PRESETS[name].num_inference_steps), preset, steps,
                      queue=False, api_visibility="private")
        return preset, seed, steps, guidance, frames, fps

    with gr.Blocks(title="showme_i2g: show people how to do things", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as demo:
        gr.Markdown("# showme_i2g\nIllustrate a recipe step by step, turn a photo into the moment after an action "
                    "or a short video of it, and animate a whole recipe.")
        gr.Markdown(full_banner(choice, studio.adapters), elem_id="banner")
        recipe_run = gr.State(None)

        with gr.Tabs():
            # ---------------------------------------------------------------- 1. Recipe -> illustrations
            with gr.Tab("Recipe → illustrations", id="recipe", elem_id="tab-recipe"):
                with gr.Row():
                    with gr.Column(scale=2):
                        goal = gr.Textbox(label="Goal", placeholder="Make pancakes", max_lines=2, elem_id="goal")
                        steps_box = gr.Textbox(label="Steps (one per line; edit freely)", lines=8, elem_id="steps",
                                               placeholder="Whisk the eggs and milk.\nFold in the flour.")
                        with gr.Row():
                            plan_count = gr.Slider(2, MAX_PLANNED_STEPS, value=6, step=1, label="Steps to write")
                            plan_button = gr.Button("Write the steps", variant="secondary")
                        with gr.Accordion("Options", open=False):
                            illustration_preset = gr.Dropdown(
                                preset_choices(ILLUSTRATION_ORDER, choice.illustration_available),
                                value=choice.illustration, label="Model preset", elem_id="recipe-preset")
                            with gr.Row():
                                recipe_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                                recipe_steps = gr.Slider(1, 100, value=illustration_default.num_inference_steps,
                                                         step=1, label="Inference steps", elem_id="recipe-steps")
                            with gr.Row():
                                recipe_guidance = gr.Slider(0, 15, value=illustration_default.guidance_scale,
                                                            step=0.5, label="Guidance")
                                recipe_size = gr.Slider(64, 1536, value=illustration_default.size, step=64,
                                                        label="Image size (pixels)")
                                neighbour = gr.Slider(0, 2, value=1.0, step=0.05, label="Neighbour weight",
                                                      info="0: steps drawn independently; 1: full neighbour attention")
                        with gr.Row():
                            illustrate_button = gr.Button("Illustrate", variant="primary", elem_id="illustrate")
                            recipe_stop = gr.Button("Stop", variant="stop", elem_id="recipe-stop")
                    with gr.Column(scale=3):
                        gallery = gr.Gallery(label="Steps", columns=4, height="auto", elem_id="gallery")
                        downloads = gr.File(label="Downloads: storyboard PNG, ZIP with run.json, HTML storyboard",
                                            file_count="multiple", elem_id="downloads")
                recipes = load_recipes()
                gr.Examples([[r["goal"], steps_to_text(r["steps"])] for r in recipes], [goal, steps_box],
                            label="The four recipes of the I2G paper's appendix")

            # ---------------------------------------------------------------- 2. Photo -> edit / video
            with gr.Tab("Photo → edit / video", id="photo", elem_id="tab-photo"):
                with gr.Row():
                    with gr.Column():
                        photo = _photo_input(gr, sources=["upload", "webcam"], label="Photo", elem_id="photo")
                        instruction = gr.Textbox(label="Instruction", placeholder="Cut the tomato in half",
                                                 max_lines=3, elem_id="instruction")
                        mode = gr.Radio([("Edited photo", "edit"), ("Video", "video"), ("Both", "both")],
                                        value="both", label="Make")
                        with gr.Accordion("Options", open=False):
                            photo_preset, photo_seed, photo_steps, photo_guidance, photo_frames, photo_fps = (
                                showme_options("photo", 16))
                            fit = gr.Radio([("Centre crop", "crop"), ("Pad", "pad")], value="crop",
                                           label="Fit the photo to the model")
                        with gr.Row():
                            photo_button = gr.Button("Go", variant="primary", elem_id="photo-go")
                            photo_stop = gr.Button("Stop", variant="stop")
                    with gr.Column():
                        edited = gr.Image(label="After the action", type="filepath", interactive=False, height=300,
                                          elem_id="edited")
                        video = gr.Video(label="The action", interactive=False, height=300)
                        photo_files = gr.File(label="Downloads: edited PNG, GIF, run.json", file_count="multiple")
                gr.Examples([list(example) for example in studio.example_photos], [photo, instruction],
                            label="Drawn kitchen scenes (made by the app)")

            # ---------------------------------------------------------------- 3. Animate my recipe
            with gr.Tab("Animate my recipe", id="animate", elem_id="tab-animate"):
                gr.Markdown("Each step image of your last recipe (first tab) goes through ShowMe's video mode with "
                            "its step as the instruction: one clip per step, plus one video with the steps as "
                            "captions.")
                with gr.Row():
                    with gr.Column():
                        animate_gallery = gr.Gallery(label="Your recipe's steps", columns=4, height="auto")
                        with gr.Accordion("Options", open=False):
                            anim_preset, anim_seed, anim_steps, anim_guidance, anim_frames, anim_fps = (
                                showme_options("animate", 16))
                        with gr.Row():
                            animate_button = gr.Button("Animate every step", variant="primary", elem_id="animate-go")
                            animate_stop = gr.Button("Stop", variant="stop")
                    with gr.Column():
                        stitched = gr.Video(label="The recipe as one video", interactive=False, height=420)
                        clip_files = gr.File(label="Downloads: ZIP of all clips with run.json, one MP4 per step",
                                             file_count="multiple")

        # ---------------------------------------------------------------- events
        def on_illustration_preset(name: str):
            preset = ILLUSTRATION_PRESETS[name]
            return (gr.update(value=preset.num_inference_steps), gr.update(value=preset.guidance_scale),
                    gr.update(value=preset.size))

        illustration_preset.change(on_illustration_preset, illustration_preset,
                                   [recipe_steps, recipe_guidance, recipe_size], queue=False, api_visibility="private")

        @gpu(duration=60)
        def plan(goal_text, count, seed, progress=gr.Progress()):
            return studio.plan(goal_text, count, seed, progress=progress)

        @gpu(duration=120)
        def illustrate(goal_text, steps_text, preset, seed, n_steps, guidance, size, weight,
                       request: gr.Request, progress=gr.Progress()):
            gallery_items, files, run = studio.illustrate(goal_text, steps_text, preset, seed, n_steps, guidance, size,
                                                          weight, session=_session(request), progress=progress)
            return gallery_items, files, run, gallery_items

        @gpu(duration=120)
        def make_photo(image, text, kind, preset, seed, n_steps, guidance, n_frames, rate, fitting,
                       request: gr.Request, progress=gr.Progress()):
            return studio.photo(image, text, kind, preset, seed, n_steps, guidance, n_frames, rate, fitting,
                                session=_session(request), progress=progress)

        @gpu(duration=300)
        def animate(run, preset, seed, n_steps, guidance, n_frames, rate, request: gr.Request,
                    progress=gr.Progress()):
            return studio.animate_recipe(run, preset, seed, n_steps, guidance, n_frames, rate,
                                         session=_session(request), progress=progress)

        def stop(request: gr.Request) -> None:
            studio.stop(_session(request))

        plan_event = plan_button.click(plan, [goal, plan_count, recipe_seed], steps_box, api_name="plan", **heavy)
        recipe_event = illustrate_button.click(
            illustrate,
            [goal, steps_box, illustration_preset, recipe_seed, recipe_steps, recipe_guidance, recipe_size, neighbour],
            [gallery, downloads, recipe_run, animate_gallery], api_name="illustrate", **heavy)
        photo_event = photo_button.click(
            make_photo,
            [photo, instruction, mode, photo_preset, photo_seed, photo_steps, photo_guidance, photo_frames, photo_fps,
             fit],
            [edited, video, photo_files], api_name="photo", **heavy)
        animate_event = animate_button.click(
            animate, [recipe_run, anim_preset, anim_seed, anim_steps, anim_guidance, anim_frames, anim_fps],
            [stitched, clip_files], api_name="animate_recipe", **heavy)
        events = [plan_event, recipe_event, photo_event, animate_event]
        for button in (recipe_stop, photo_stop, animate_stop):
            public = button is recipe_stop  # one API endpoint is enough: every Stop does the same
            button.click(stop, None, None, cancels=events, queue=False, api_name="stop" if public else None,
                         api_visibility="public" if public else "private")
    return demo


def launch(demo, studio: Studio, host: str, port: int | None, share: bool = False, block: bool = True, **kwargs):
    """Queue and serve the page; prints the local URL. Returns gradio's ``(app, local_url, share_url)``."""
    demo.queue(max_size=32)
    result = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                         allowed_paths=[str(studio.runs.root)], max_file_size=MAX_UPLOAD, css=_CSS, **kwargs)
    print(f"showme_i2g app ready at {result[1]}", flush=True)
    threading.Thread(target=_import_pipelines, name="import-pipelines", daemon=True).start()
    if block:
        demo.block_thread()
    return result


def _import_pipelines() -> None:
    """Import torch, diffusers, the pipelines and spaCy (the clause splitter's parser) once the page is up, while it
    waits for its first click: several seconds on a CPU. Models themselves still load lazily, on first use.
    (Importing them while Gradio itself imports is slower: two threads importing at once contend for the locks.)"""
    import showme_i2g.i2g.pipeline  # noqa: F401
    import showme_i2g.showme.pipeline  # noqa: F401

    try:
        import spacy  # noqa: F401
    except ImportError:  # the clause splitter then falls back to punctuation
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    trained = TrainedAdapters.from_args(args)
    try:
        trained.check()
        on_gpu = args.device is None or args.device.startswith("cuda")
        choice = pick_presets(args.preset, args.showme_preset, lora_dir=args.lora_dir, on_gpu=on_gpu,
                              trained_adapters=trained.complete)
        if on_gpu and choice.illustration_available != ("tiny",):
            import torch  # worth its import time only when SDXL weights are cached: fp16 files count on a GPU only

            if not torch.cuda.is_available():
                choice = pick_presets(args.preset, args.showme_preset, lora_dir=args.lora_dir, on_gpu=False,
                                      trained_adapters=trained.complete)
    except ShowMeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(full_banner(choice, trained).replace("**", "").replace("`", "").replace("  \n", "\n"), flush=True)
    studio = Studio(choice, device=args.device, lora_dir=args.lora_dir, runs_dir=args.runs_dir, adapters=trained)
    launch(build_demo(studio), studio, args.host, args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
