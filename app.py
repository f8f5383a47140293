"""showme_i2g in the browser: recipe -> illustrations, photo -> edit / video, and a recipe animated step by step.

    python app.py [--preset NAME] [--showme-preset NAME] [--download] [--lora-dir DIR] [--port N] [--host H]
                  [--share] [--lora FILE] [--edit-adapter FILE] [--animate-adapter FILE] [--run-budget SECONDS]

Trained adapters (``--lora`` for the illustrations, ``--edit-adapter`` / ``--animate-adapter`` for photo edits and
videos) are chosen when the app starts, never typed into the page; every model the app loads uses them. So are
weights: ``--download`` fetches the named presets' weights before the page serves, and a request never downloads.

This file only builds the page, checks what people type and hands it to the library (``IllustrationPipeline``,
``ShowMePipeline``, ``StepPlanner``); the app's own plain-Python parts are the package ``showme_i2g.app``: files are
written by ``showme_i2g.media`` and ``showme_i2g.app.outputs``, and runs are ended early (Stop, a closed page, a
cancelled request, a spent time budget) through ``showme_i2g.app.runs``. Every input is checked by a validator
before its job enters the queue, so a refusal never waits behind another user's run. Gradio and torch are imported
only once the arguments are parsed, so ``--help`` answers at once. On a ZeroGPU Space (``SPACES_ZERO_GPU``), the
models load at start-up and each heavy call asks ``spaces.GPU`` for a duration computed from its own settings.
"""

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import secrets
import sys
import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from showme_i2g.app.downloads import (
    download_weights,
    missing_preset_message,
    preset_download_command,
)
from showme_i2g.app.examples import make_example_photos
from showme_i2g.app.hardware import HardwareLimits, detect_device, gpu_seconds, zero_gpu
from showme_i2g.app.models import ModelCache
from showme_i2g.app.outputs import fit_instruction, write_animation_outputs, write_recipe_outputs
from showme_i2g.app.presets import (
    ILLUSTRATION_ORDER,
    SHOWME_ORDER,
    PresetChoice,
    banner_markdown,
    pick_presets,
    preset_choices,
)
from showme_i2g.app.runs import RunFolders, RunOutOfTime, RunRegistry, RunStopped
from showme_i2g.cli import quiet_torchvision_notices
from showme_i2g.errors import InvalidInputError, ShowMeError, WeightsNotFoundError
from showme_i2g.media import DEFAULT_FPS, FIT_MODES
from showme_i2g.outputs import redraw_settings, write_run_json
from showme_i2g.presets import ILLUSTRATION_PRESETS, SHOWME_PRESETS
from showme_i2g.text.step_lines import MAX_PLANNED_STEPS, parse_step_lines, steps_to_text
from showme_i2g.validation import DEFAULT_FRAMES, MAX_FRAMES, MAX_INSTRUCTION_CHARS, check_number, clean_text

RECIPES_FILE = Path(__file__).resolve().parent / "examples" / "i2g_appendix_recipes.json"
MAX_SEED = 2**31 - 1
MAX_UPLOAD = "25mb"
SIZE_STEP, MIN_SIZE = 64, 64  # the size slider's step and lowest value: multiples of every preset's size multiple
ANCHOR_OPTIONS = {"none": "Nothing more", "reference": "Your kitchen photo", "first": "Step 1"}

try:  # Hugging Face Spaces (ZeroGPU): a GPU is attached for the length of each decorated call
    import spaces
except ImportError:
    spaces = None


def gpu(duration: int | Callable[..., int]) -> Callable:
    """``spaces.GPU(duration=...)`` on a Space that has the ``spaces`` package; elsewhere nothing.

    ``duration`` may be a function of the decorated function's own arguments (ZeroGPU's dynamic duration), so a
    2-step edit does not queue behind a reservation sized for a 16-step recipe.
    """
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
        "run; with none there, the untrained tiny presets run, and the page says so. The app downloads nothing while "
        "it serves: --download fetches the named presets' weights once, before the page starts.",
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
                        help="a trained edit adapter folder, <out>/edit of stage 1 (env SHOWME_EDIT_ADAPTER)")
    parser.add_argument("--animate-adapter", type=Path, default=env("SHOWME_ANIMATE_ADAPTER") or None,
                        help="a trained animate adapter folder, <out>/animate of stage 2 (env SHOWME_ANIMATE_ADAPTER)")
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME") or ("0.0.0.0" if env("SPACE_ID") else "127.0.0.1"),
                        help="address to serve on (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT") or 0) or None,
                        help="port (env GRADIO_SERVER_PORT; default: the first free one from 7860)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--runs-dir", type=Path, help="where run outputs go (default: showme-i2g-app in the temp dir)")
    parser.add_argument("--download", action="store_true", default=env("SHOWME_DOWNLOAD", "") in ("1", "true"),
                        help="first fetch the weights of the presets named by --preset / --showme-preset (with a "
                        "progress bar), then serve (env SHOWME_DOWNLOAD=1)")
    parser.add_argument("--run-budget", type=float, default=float(env("SHOWME_RUN_BUDGET") or 0) or None,
                        metavar="SECONDS", help="end any run that holds the model longer than this (env "
                        "SHOWME_RUN_BUDGET; default 600 on a CPU, 300 on a GPU)")
    return parser


def load_recipes(path: Path = RECIPES_FILE) -> list[dict]:
    """The four recipes of the I2G appendix: ``[{"goal": ..., "steps": [...]}, ...]``."""
    return json.loads(path.read_text(encoding="utf-8"))["recipes"]


# ---------------------------------------------------------------------------------------------------------------------
# The studio: models shared by every user, and what each button does
# ---------------------------------------------------------------------------------------------------------------------


class Refusal(InvalidInputError):
    """A bad input, with the name of the box it came from, so the page's validator marks that box."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _field(name: str, check: Callable, *args) -> Any:
    """``check(*args)``, its one-sentence refusal tagged with the input's name."""
    try:
        return check(*args)
    except Refusal:
        raise
    except ShowMeError as error:
        raise Refusal(name, str(error)) from error


def user_errors(fn: Callable) -> Callable:
    """Turn the library's one-sentence errors (a Stop, a spent budget, GPU out-of-memory) into ``gr.Error``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import gradio as gr

        try:
            return fn(*args, **kwargs)
        except ShowMeError as error:
            raise gr.Error(str(error), print_exception=False) from error
        except RunOutOfTime as error:
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


def _tell(message: str, level: str = "warning") -> None:
    """Show ``message`` on the page of the request being served (a toast); outside a request, a Python warning."""
    import gradio as gr

    (gr.Warning if level == "warning" else gr.Info)(message)


_WARNINGS_LOCK = threading.Lock()  # warnings.catch_warnings changes process-wide state: one caller at a time


def _load_photo(path, tell: Callable[[str], None] | None = None):
    """``media.load_photo``, its warnings (an animated file cut to its first frame) shown to the user, not the log."""
    from showme_i2g.media import AnimatedPhotoWarning, load_photo

    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnimatedPhotoWarning)
        photo = load_photo(path)
    for warning in caught:
        if issubclass(warning.category, AnimatedPhotoWarning):
            if tell is not None:
                tell(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return photo


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
    def adapters(self) -> tuple[str, ...]:
        """The ShowMe adapters given as files of our own (with both, the ``showme`` preset reads none of the
        authors' LoRA files: ``ShowMePreset.reads_release_loras``)."""
        return tuple(name for name, path in (("edit", self.edit), ("animate", self.animate)) if path is not None)

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
    """Everything the buttons share: the chosen presets, the models (each loaded once), the runs going, folders.

    ``planner_factory`` builds the step planner on first use (default: ``StepPlanner.default``, the offline GGUF).
    ``limits`` are the largest settings offered and each run's time budget (default: this machine's, see
    :class:`~showme_i2g.app.hardware.HardwareLimits`). ``tell(message, level)`` shows a note to the user.
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
        limits: HardwareLimits | None = None,
        tell: Callable[..., None] = _tell,
    ) -> None:
        self.choice = choice
        self.device = device
        self.lora_dir = lora_dir
        self.adapters = adapters or TrainedAdapters()
        self.limits = limits or HardwareLimits.for_device(detect_device(device))
        self.tell = tell
        self.models = ModelCache()
        self.running = RunRegistry()
        self.runs = RunFolders(runs_dir)
        self.planner_factory = planner_factory
        self.example_photos = make_example_photos(self.runs.root / "examples")
        quiet_torchvision_notices()  # before any thread imports diffusers: two notices about a package not used

    # ------------------------------------------------------------------ models
    def _make_room(self, key: tuple) -> None:
        """One model per family: loading another preset frees the one it replaces (one GPU holds one SDXL)."""
        if self.models.evict(lambda other: other[0] != key[0] or other == key):
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _check_preset(self, family: str, name: object) -> str:
        """A preset on the list whose weights are here: a request never starts a download (``--download`` does)."""
        presets, available = ((ILLUSTRATION_PRESETS, self.choice.illustration_available) if family == "illustration"
                              else (SHOWME_PRESETS, self.choice.showme_available))
        if name not in presets:
            raise InvalidInputError(f"Unknown preset {name!r}; choose one from the list.")
        if name not in available:
            raise WeightsNotFoundError(missing_preset_message(family, name))
        return name

    def _illustrator(self, name: str):
        name = self._check_preset("illustration", name)

        def load():
            IllustrationPipeline, _ = _pipelines()
            self._make_room(("illustration", name))
            pipe = IllustrationPipeline.from_preset(name, device=self.device, lora=self.adapters.lora)
            pipe.set_progress_bar_config(disable=True)
            return pipe

        return self.models.use(("illustration", name), load)

    def _showme(self, name: str):
        name = self._check_preset("showme", name)

        def load():
            _, ShowMePipeline = _pipelines()
            self._make_room(("showme", name))
            pipe = ShowMePipeline.from_preset(name, device=self.device, lora_dir=self.lora_dir,
                                              edit_adapter=self.adapters.edit, animate_adapter=self.adapters.animate)
            pipe.set_progress_bar_config(disable=True)
            return pipe

        return self.models.use(("showme", name), load)

    def _planner(self, progress: Callable[[float, str], None] | None = None):
        def load():
            if self.planner_factory is not None:
                return self.planner_factory()
            from showme_i2g.text.planner import StepPlanner

            return StepPlanner.default(device=self.device, progress=progress)  # tokenizer, weights, device

        return self.models.use(("planner",), load)

    def preload(self) -> None:
        """Load the chosen presets' models now (a ZeroGPU Space loads at start-up, outside the GPU-decorated calls)."""
        for family, name, open_model in (("illustration", self.choice.illustration, self._illustrator),
                                         ("showme", self.choice.showme, self._showme)):
            available = (self.choice.illustration_available if family == "illustration"
                         else self.choice.showme_available)
            if name in available:
                with open_model(name):
                    pass

    @staticmethod
    def _reporter(progress, desc: str, offset: int = 0, grand_total: int | None = None):
        """A pipeline ``progress_callback``: moves the page's bar after each denoising step."""

        def callback(done: int, total: int) -> None:
            progress((offset + done, grand_total or total), desc=desc, unit="steps")

        return callback

    @staticmethod
    def _interrupter(control):
        """A pipeline ``callback_on_step_end`` that ends sampling the diffusers way once the run was stopped or ran
        out of time: it sets ``pipe._interrupt``, so the pipeline leaves its loop after this step and frees its
        model hooks; the ``control.check`` before the first decode (``callback_on_decode``) then ends the run."""

        def callback(pipe, step: int, timestep, tensors: dict) -> dict:
            if control.stopped or control.out_of_time:
                pipe._interrupt = True
            return tensors

        return callback

    # ------------------------------------------------------------------ checks: fast, before the queue
    @staticmethod
    def _whole_field(field: str, value, label: str, low: int, high: int) -> int:
        return _field(field, _whole, value, label, low, high)

    @staticmethod
    def _number_field(field: str, value, label: str, low: float, high: float) -> float:
        _field(field, check_number, value, label, low, high)
        return float(value)

    def _size(self, value) -> int:
        """The image size on the slider's grid: a value between steps snaps to the nearest one; outside the slider's
        range the refusal names that range, not the model's."""
        high = self.limits.max_size
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not MIN_SIZE <= value <= high:
            raise Refusal("size", f"The image size must be from {MIN_SIZE} to {high} pixels on this machine, "
                                  f"got {value!r}.")
        return min(high, max(MIN_SIZE, SIZE_STEP * round(value / SIZE_STEP)))

    def check_recipe(self, goal, steps, preset, seed, inference_steps, guidance, size, neighbour_weight,
                     kitchen=None, anchor="none", anchor_weight=1.0, tell: Callable[[str], None] | None = None
                     ) -> dict:
        """The recipe tab's inputs, cleaned, or a :class:`Refusal` naming the first bad one.

        ``kitchen`` is the optional photo of the user's kitchen (checked like the photo tab's), ``anchor`` what every
        step also attends to: ``"none"``, ``"reference"`` (the kitchen photo) or ``"first"`` (step 1).
        """
        from showme_i2g.i2g.inputs import MAX_GUIDANCE, MAX_NEIGHBOUR_WEIGHT, clean_goal, clean_steps

        if anchor not in ANCHOR_OPTIONS:
            raise Refusal("anchor", "Choose what every step also looks at: nothing, your kitchen photo or step 1.")
        if anchor == "reference" and not kitchen:
            raise Refusal("anchor", "Add a photo of your kitchen to anchor every step to it, or choose another anchor.")
        return dict(
            reference=_field("kitchen", _load_photo, kitchen, tell) if kitchen else None,
            anchor=None if anchor == "none" else anchor,
            anchor_weight=self._number_field("anchor_weight", anchor_weight, "The anchor weight", 0,
                                             MAX_NEIGHBOUR_WEIGHT),
            goal=_field("goal", clean_goal, goal),
            steps=_field("steps", lambda text: clean_steps(parse_step_lines(text)), steps),
            preset=_field("preset", self._check_preset, "illustration", preset),
            seed=_field("seed", _seed, seed),
            inference_steps=self._whole_field("inference_steps", inference_steps, "Inference steps", 1,
                                        self.limits.max_inference_steps),
            guidance=self._number_field("guidance", guidance, "Guidance", 0, MAX_GUIDANCE),
            size=self._size(size),
            neighbour_weight=self._number_field("neighbour_weight", neighbour_weight, "The neighbour weight", 0,
                                          MAX_NEIGHBOUR_WEIGHT),
        )

    def _showme_settings(self, preset, seed, inference_steps, guidance, frames, fps) -> dict:
        return dict(
            preset=_field("preset", self._check_preset, "showme", preset),
            seed=_field("seed", _seed, seed),
            inference_steps=self._whole_field("inference_steps", inference_steps, "Inference steps", 1,
                                        self.limits.max_inference_steps),
            guidance=self._number_field("guidance", guidance, "Guidance", 0, 30),
            frames=self._whole_field("frames", frames, "The number of frames", 2,
                                     min(MAX_FRAMES, self.limits.max_frames)),
            fps=self._whole_field("fps", fps, "Frames per second", 1, 60),
        )

    def check_photo(self, image, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit,
                    tell: Callable[[str], None] | None = None) -> dict:
        """The photo tab's inputs, cleaned (the photo opened and checked), or a :class:`Refusal`."""
        if not image:
            raise Refusal("image", "Please add a photo first: upload one or take one with the webcam.")
        if mode not in ("edit", "video", "both"):
            raise Refusal("mode", "Choose what to make: the edited photo, the video or both.")
        if fit not in FIT_MODES:
            raise Refusal("fit", f"Choose how to fit the photo: {' or '.join(FIT_MODES)}.")
        return dict(
            instruction=_field("instruction", clean_text, instruction, "instruction", MAX_INSTRUCTION_CHARS),
            photo=_field("image", _load_photo, image, tell),  # non-images and huge pictures, before any model
            mode=mode, fit=fit,
            **self._showme_settings(preset, seed, inference_steps, guidance, frames, fps),
        )

    def check_redraw(self, run, steps_text, step_number) -> tuple[int, list[str]]:
        """The step of the last recipe to draw again and the steps to draw it with, or a :class:`Refusal`.

        The steps box may differ from the last run only in the step being drawn again (its new text is used);
        any other change needs a new run, since the kept pictures show the old steps.
        """
        if not run or not run.get("images"):
            raise Refusal("run", "Illustrate a recipe first; then pick the step to draw again in the gallery.")
        number = _field("step_number", _whole, step_number, "The step to draw again", 1, len(run["images"]))
        kitchen = (run.get("metadata") or {}).get("reference")
        if not all(Path(path).is_file() for path in [*run["images"], *([kitchen] if kitchen else [])]):
            raise Refusal("run", "This run's pictures were cleared from the server; press Illustrate to draw the "
                                 "recipe again.")
        steps = list(run["steps"])
        if steps_text is not None:
            from showme_i2g.i2g.inputs import clean_steps

            typed = _field("steps", lambda text: clean_steps(parse_step_lines(text)), steps_text)
            changed = [i for i, (new, old) in enumerate(zip(typed, steps)) if new != old]
            if len(typed) != len(steps) or any(i != number - 1 for i in changed):
                raise Refusal("steps", "The steps changed since the last run; press Illustrate to draw them, or "
                                       "undo the change to re-draw one step.")
            steps = typed
        return number, steps

    def check_animation(self, run, preset, seed, inference_steps, guidance, frames, fps) -> dict:
        """The Animate tab's inputs, cleaned, or a :class:`Refusal`."""
        if not run or not run.get("images"):
            raise Refusal("run", "There are no step images yet; illustrate a recipe on the first tab, then come back.")
        return self._showme_settings(preset, seed, inference_steps, guidance, frames, fps)

    # ------------------------------------------------------------------ buttons
    @user_errors
    def plan(self, goal: str, num_steps: float, seed: float, session: str = "", progress=None,
             run_id: str | None = None, budget_s: float | None = None) -> str:
        """"Write the steps": the planner's steps for the goal, one per line, for the user to edit.

        The planner is asked for ``num_steps``; when it writes fewer, its one-sentence note is shown on the page.
        Its progress (loading, then the share of its token budget written) moves the bar, and Stop, a closed page or
        a cancelled request end it there.
        """
        from showme_i2g.i2g.inputs import clean_goal

        goal = clean_goal(goal)
        num_steps, seed = _whole(num_steps, "The number of steps", 1, MAX_PLANNED_STEPS), _seed(seed)
        progress = _no_progress if progress is None else progress
        with self.running.start(session, budget_s or self.limits.budget_s, run_id) as control:

            def report(fraction: float, description: str) -> None:
                control.check()
                progress(fraction, desc=description)

            progress(0, desc="Loading the step planner")
            with self._planner(report) as planner:
                control.check()
                steps = planner.plan(goal, num_steps, seed=seed, progress=report)
        note = getattr(steps, "note", None)
        if note:
            self.tell(note, "warning")
        return steps_to_text(steps)

    @user_errors
    def illustrate(self, goal, steps_text, preset, seed, inference_steps, guidance, size, neighbour_weight,
                   kitchen=None, anchor="none", anchor_weight=1.0, session: str = "", progress=None,
                   run_id: str | None = None, budget_s: float | None = None):
        """Recipe -> one image per step; returns (gallery items, download files, the run for the Animate tab)."""
        asked = self.check_recipe(goal, steps_text, preset, seed, inference_steps, guidance, size, neighbour_weight,
                                  kitchen, anchor, anchor_weight, tell=self.tell)
        return self._draw(asked, size, session, progress, run_id, budget_s)

    @user_errors
    def redraw(self, run, steps_text, step_number, seed, session: str = "", progress=None, run_id: str | None = None,
               budget_s: float | None = None):
        """Draw one step of the last recipe again with ``seed``; every other step is kept exactly as it was.

        The settings are the last run's (``outputs.redraw_settings``, as the CLI's ``--keep``): preset, size,
        sampler, weights, anchor and kitchen photo, so the kept pictures and the new one belong together.
        """
        number, steps = self.check_redraw(run, steps_text, step_number)
        settings = redraw_settings(run["metadata"])
        kitchen = settings["reference"]
        asked = dict(
            goal=run["goal"], steps=steps, preset=settings["preset"], seed=_field("seed", _seed, seed),
            inference_steps=settings["num_inference_steps"], guidance=settings["guidance_scale"],
            size=settings["height"], neighbour_weight=settings["neighbour_weight"], anchor=settings["anchor"],
            anchor_weight=1.0 if settings["anchor_weight"] is None else settings["anchor_weight"],
            reference=_field("run", _load_photo, kitchen) if kitchen else None,
            keep={n: _field("run", _load_photo, path) for n, path in enumerate(run["images"], 1) if n != number},
            extra={"kept_from": str(Path(run["images"][0]).parent), "redrawn": [number]},
        )
        return self._draw(asked, asked["size"], session, progress, run_id, budget_s)

    def _draw(self, asked: dict, size, session: str, progress, run_id: str | None, budget_s: float | None):
        """Run the illustration pipeline for checked settings and write the downloads."""
        if asked["size"] != size:
            self.tell(f"The image size {size:g} was rounded to {asked['size']} pixels: sizes go in steps of "
                      f"{SIZE_STEP}.", "info")
        progress = _no_progress if progress is None else progress
        with self.running.start(session, budget_s or self.limits.budget_s, run_id) as control:
            progress(0, desc=f"Loading the '{asked['preset']}' model")
            with self._illustrator(asked["preset"]) as pipe:
                control.check()
                total = asked["inference_steps"]
                keep = asked.get("keep") or {}
                count = len(asked["steps"]) - len(keep)
                desc = (f"Drawing step {next(n for n in range(1, count + len(keep) + 1) if n not in keep)} again"
                        if keep else f"Illustrating {count} steps") + ": denoising"
                progress((0, total), desc=desc, unit="steps")  # the bar leaves "loading" before the first step

                def before_decoding(done: int, pictures: int) -> None:  # one picture per VAE call
                    control.check()
                    progress((done, pictures), desc="Decoding the pictures", unit="pictures")

                result = pipe(asked["goal"], asked["steps"], seed=asked["seed"], num_inference_steps=total,
                              guidance_scale=asked["guidance"], height=asked["size"], width=asked["size"],
                              neighbour_weight=asked["neighbour_weight"], keep=keep or None,
                              reference_image=asked.get("reference"), anchor=asked.get("anchor"),
                              anchor_weight=asked.get("anchor_weight", 1.0),
                              progress_callback=self._reporter(progress, desc),
                              callback_on_step_end=self._interrupter(control), callback_on_decode=before_decoding)
            control.check()
            progress(1.0, desc="Writing the storyboard and downloads")
            folder = self.runs.new("recipe")
            extra = dict(asked.get("extra") or {})
            if asked.get("reference") is not None:  # kept with the run, so a later redraw never loses it
                extra["reference"] = folder / "kitchen.png"
                asked["reference"].save(extra["reference"])
            files = write_recipe_outputs(result, folder, **extra)
        gallery = [(str(path), f"{n}. {step}") for n, (path, step) in enumerate(zip(files.steps, result.steps), 1)]
        metadata = {**result.metadata, **{k: str(v) if isinstance(v, Path) else v for k, v in extra.items()}}
        run = {"goal": result.goal, "steps": result.steps, "images": [str(p) for p in files.steps],
               "metadata": metadata}
        return gallery, [str(files.storyboard), str(files.zip), str(files.html)], run

    @user_errors
    def photo(self, image_path, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit,
              session: str = "", progress=None, run_id: str | None = None, budget_s: float | None = None):
        """Photo + instruction -> (edited photo or None, MP4 or None, download files)."""
        from showme_i2g.media import save_video

        asked = self.check_photo(image_path, instruction, mode, preset, seed, inference_steps, guidance, frames, fps,
                                 fit, tell=self.tell)
        photo, steps = asked["photo"], asked["inference_steps"]
        progress = _no_progress if progress is None else progress
        passes = ["edit"] * (asked["mode"] != "video") + ["video"] * (asked["mode"] != "edit")
        edited = video = None
        record: dict = {"instruction": asked["instruction"], "photo_size": [photo.height, photo.width]}
        files: list[str] = []
        with self.running.start(session, budget_s or self.limits.budget_s, run_id) as control:
            folder = self.runs.new("photo")
            progress(0, desc=f"Loading the '{asked['preset']}' model")
            with self._showme(asked["preset"]) as pipe:
                for index, kind in enumerate(passes):
                    control.check()
                    desc = "Editing the photo: denoising" if kind == "edit" else "Making the video: denoising"
                    progress((index * steps, len(passes) * steps), desc=desc, unit="steps")
                    report = self._reporter(progress, desc, offset=index * steps, grand_total=len(passes) * steps)
                    options = dict(seed=asked["seed"], num_inference_steps=steps, guidance_scale=asked["guidance"],
                                   fit=asked["fit"], progress_callback=report,
                                   callback_on_step_end=self._interrupter(control),
                                   callback_on_decode=lambda _done, _total: control.check())
                    if kind == "edit":
                        result = pipe.edit(photo, asked["instruction"], **options)
                        control.check()  # a stop during the last decode: nothing is written
                        edited = str(folder / "edited.png")
                        result.image.save(edited)
                        files.append(edited)
                        record["edit"] = result.metadata
                    else:
                        result = pipe.animate(photo, asked["instruction"], num_frames=asked["frames"], **options)
                        control.check()
                        progress(1.0, desc="Writing the video")
                        video = str(save_video(result.frames, folder / "video.mp4", fps=asked["fps"]))
                        control.check()
                        files.append(str(save_video(result.frames, folder / "video.gif", fps=asked["fps"])))
                        record["video"] = {**result.metadata, "fps": asked["fps"]}
        files.append(str(write_run_json(folder / "run.json", record)))
        return edited, video, files

    @user_errors
    def animate_recipe(self, run, preset, seed, inference_steps, guidance, frames, fps, session: str = "",
                       progress=None, run_id: str | None = None, budget_s: float | None = None):
        """Every step image of the last recipe run -> a clip of its step; returns (stitched MP4, download files)."""
        asked = self.check_animation(run, preset, seed, inference_steps, guidance, frames, fps)
        progress = _no_progress if progress is None else progress
        steps = run["steps"]
        instructions = [fit_instruction(step, MAX_INSTRUCTION_CHARS) for step in steps]
        with self.running.start(session, budget_s or self.limits.budget_s, run_id) as control:
            progress(0, desc=f"Loading the '{asked['preset']}' model")
            with self._showme(asked["preset"]) as pipe:
                # every step's clip in one batched sampling loop (chunks that fit the GPU), each with the run's seed
                control.check()
                desc = f"Animating all {len(steps)} steps: denoising"
                progress((0, asked["inference_steps"]), desc=desc, unit="steps")
                results = pipe.animate_many(run["images"], instructions, seeds=[asked["seed"]] * len(steps),
                                            num_frames=asked["frames"], num_inference_steps=asked["inference_steps"],
                                            guidance_scale=asked["guidance"],
                                            progress_callback=self._reporter(progress, desc),
                                            callback_on_step_end=self._interrupter(control),
                                            callback_on_decode=lambda _done, _total: control.check())
            clips, metadata = [r.frames for r in results], [r.metadata for r in results]
            progress(1.0, desc="Writing the clips and the stitched video")
            record = {"goal": run["goal"], "steps": steps, "illustrations": run["metadata"], "clips": metadata,
                      "fps": asked["fps"]}
            files = write_animation_outputs(clips, steps, self.runs.new("animate"), asked["fps"], record,
                                            check=control.check)
        return str(files.stitched), [str(files.zip), *map(str, files.clips)]

    def stop(self, session: str) -> int:
        """End every run of this browser session at its next step (Stop, or the page was closed)."""
        return self.running.stop(session)


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
.step-gallery .caption-label {white-space: normal; display: -webkit-box; -webkit-line-clamp: 2;
                              -webkit-box-orient: vertical; padding-bottom: 0; border-bottom: 4px solid transparent}
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


def weights_note(choice: PresetChoice, family: str, name: str) -> str:
    """What the page says under a preset dropdown: nothing when its weights are here, else the exact command."""
    available = choice.illustration_available if family == "illustration" else choice.showme_available
    if name in available or name not in (ILLUSTRATION_PRESETS if family == "illustration" else SHOWME_PRESETS):
        return ""
    return (f"⚠️ The `{name}` preset's weights are not on this machine, and the app does not download while it "
            f"serves. Fetch them by restarting it with `{preset_download_command(family, name)}`.")


def _validator(check: Callable[..., Any], names: list[str]) -> Callable[..., tuple]:
    """A Gradio validator (run before the job enters the queue) from a ``Studio.check_*`` method: the refused input
    gets the sentence; ``names`` are the handler's parameter names, in the order of its inputs."""
    import gradio as gr

    def validate(*values):
        try:
            check(*values)
        except ShowMeError as error:
            field = error.field if isinstance(error, Refusal) and error.field in names else names[0]
            return tuple(gr.validate(name != field, str(error) if name == field else "") for name in names)
        return tuple(gr.validate(True, "") for _ in names)

    return validate


def _note_update(gr, choice: PresetChoice, family: str, name: str):
    """The note under a preset dropdown: shown, with the download command, only for a preset without weights."""
    text = weights_note(choice, family, name)
    return gr.update(value=text, visible=bool(text))


def _showme_options(gr, studio: Studio, prefix: str, frames_default: int):
    """The ShowMe settings both photo tabs share: preset (and its weights note), seed, steps, guidance, frames, fps."""
    choice, limits = studio.choice, studio.limits
    showme_default = SHOWME_PRESETS[choice.showme]
    max_frames = min(MAX_FRAMES, limits.max_frames)
    preset = gr.Dropdown(preset_choices(SHOWME_ORDER, choice.showme_available), value=choice.showme,
                         label="Model preset", elem_id=f"{prefix}-preset")
    missing = gr.Markdown(weights_note(choice, "showme", choice.showme), elem_id=f"{prefix}-weights",
                          visible=bool(weights_note(choice, "showme", choice.showme)))
    with gr.Row():
        seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
        steps = gr.Slider(1, limits.max_inference_steps, step=1, label="Inference steps",
                          value=min(showme_default.num_inference_steps, limits.max_inference_steps))
        guidance = gr.Slider(1, 15, value=showme_default.guidance_scale, step=0.5, label="Guidance")
    with gr.Row():
        frames = gr.Slider(2, max_frames, value=min(frames_default, max_frames), step=1, label="Frames")
        fps = gr.Slider(1, 30, value=DEFAULT_FPS, step=1, label="Frames per second")
    preset.input(lambda name: (gr.update(value=min(SHOWME_PRESETS[name].num_inference_steps,
                                                    limits.max_inference_steps)),
                               _note_update(gr, choice, "showme", name)),
                 preset, [steps, missing], queue=False, api_visibility="private")
    return preset, seed, steps, guidance, frames, fps


def _recipe_tab(gr, studio: Studio) -> SimpleNamespace:
    """Tab 1, recipe -> illustrations: its components (the events are wired in :func:`build_demo`)."""
    choice, limits = studio.choice, studio.limits
    illustration_default = ILLUSTRATION_PRESETS[choice.illustration]
    with gr.Row():
        with gr.Column(scale=2):
            goal = gr.Textbox(label="Goal", placeholder="Make pancakes", max_lines=2, elem_id="goal")
            steps_box = gr.Textbox(label="Steps (one per line; edit freely)", lines=8, elem_id="steps",
                                   placeholder="Whisk the eggs and milk.\nFold in the flour.")
            with gr.Row():
                plan_count = gr.Slider(2, MAX_PLANNED_STEPS, value=6, step=1, label="Steps to write")
                plan_button = gr.Button("Write the steps", variant="secondary")
            kitchen = _photo_input(gr, sources=["upload", "webcam"], height=180, elem_id="kitchen",
                                   label="Your kitchen (optional): a photo the steps carry on from")
            with gr.Accordion("Options", open=False):
                illustration_preset = gr.Dropdown(
                    preset_choices(ILLUSTRATION_ORDER, choice.illustration_available),
                    value=choice.illustration, label="Model preset", elem_id="recipe-preset")
                recipe_missing = gr.Markdown(
                    weights_note(choice, "illustration", choice.illustration), elem_id="recipe-weights",
                    visible=bool(weights_note(choice, "illustration", choice.illustration)))
                with gr.Row():
                    recipe_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                    recipe_steps = gr.Slider(
                        1, limits.max_inference_steps, step=1, label="Inference steps",
                        value=min(illustration_default.num_inference_steps, limits.max_inference_steps),
                        elem_id="recipe-steps")
                with gr.Row():
                    recipe_guidance = gr.Slider(0, 15, value=illustration_default.guidance_scale,
                                                step=0.5, label="Guidance")
                    recipe_size = gr.Slider(MIN_SIZE, limits.max_size, step=SIZE_STEP,
                                            value=min(illustration_default.size, limits.max_size),
                                            label="Image size (pixels)", elem_id="recipe-size")
                    neighbour = gr.Slider(0, 2, value=1.0, step=0.05, label="Neighbour weight",
                                          info="0: steps drawn independently; 1: full neighbour attention")
                with gr.Row():
                    anchor = gr.Radio([(label, key) for key, label in ANCHOR_OPTIONS.items()],
                                      value="none", label="Every step also looks at", elem_id="anchor",
                                      info="keeps a long recipe in one scene")
                    anchor_weight = gr.Slider(0, 3, value=1.0, step=0.05, label="Anchor weight",
                                              elem_id="anchor-weight")
            with gr.Row():
                illustrate_button = gr.Button("Illustrate", variant="primary", elem_id="illustrate")
                recipe_stop = gr.Button("Stop", variant="stop", elem_id="recipe-stop")
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Steps (select one to draw it again)", columns=4, height="auto",
                                 elem_id="gallery", elem_classes=["step-gallery"])
            with gr.Row():
                redraw_step = gr.Number(None, precision=0, label="Step to draw again (click its picture)",
                                        elem_id="redraw-step")
                redraw_button = gr.Button("Re-draw this step (keeps the others)", variant="secondary",
                                          elem_id="redraw")
            downloads = gr.File(label="Downloads: storyboard PNG, ZIP with run.json, HTML storyboard",
                                file_count="multiple", elem_id="downloads")
    recipes = load_recipes()
    # Examples only fill the inputs: nothing runs or is cached at start-up (a Space starts at once).
    gr.Examples([[r["goal"], steps_to_text(r["steps"])] for r in recipes], [goal, steps_box],
                label="The four recipes of the I2G paper's appendix", cache_examples=False)
    return SimpleNamespace(
        goal=goal, steps_box=steps_box, plan_count=plan_count, plan_button=plan_button, kitchen=kitchen,
        illustration_preset=illustration_preset, recipe_missing=recipe_missing, recipe_seed=recipe_seed,
        recipe_steps=recipe_steps, recipe_guidance=recipe_guidance, recipe_size=recipe_size, neighbour=neighbour,
        anchor=anchor, anchor_weight=anchor_weight, illustrate_button=illustrate_button, recipe_stop=recipe_stop,
        gallery=gallery, redraw_step=redraw_step, redraw_button=redraw_button, downloads=downloads, recipes=recipes,
    )

def _photo_tab(gr, studio: Studio) -> SimpleNamespace:
    """Tab 2, photo -> edited photo or video: its components."""
    with gr.Row():
        with gr.Column():
            photo = _photo_input(gr, sources=["upload", "webcam"], label="Photo", elem_id="photo")
            instruction = gr.Textbox(label="Instruction", placeholder="Cut the tomato in half",
                                     max_lines=3, elem_id="instruction")
            mode = gr.Radio([("Edited photo", "edit"), ("Video", "video"), ("Both", "both")],
                            value="both", label="Make")
            with gr.Accordion("Options", open=False):
                photo_preset, photo_seed, photo_steps, photo_guidance, photo_frames, photo_fps = (
                    _showme_options(gr, studio, "photo", DEFAULT_FRAMES))
                fit = gr.Radio([("Centre crop: the result has the model's shape", "crop"),
                                ("Pad: the result keeps the photo's shape", "pad")], value="crop",
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
                label="Drawn kitchen scenes (made by the app)", cache_examples=False)
    return SimpleNamespace(
        photo=photo, instruction=instruction, mode=mode, photo_preset=photo_preset, photo_seed=photo_seed,
        photo_steps=photo_steps, photo_guidance=photo_guidance, photo_frames=photo_frames, photo_fps=photo_fps,
        fit=fit, photo_button=photo_button, photo_stop=photo_stop, edited=edited, video=video,
        photo_files=photo_files,
    )

def _animate_tab(gr, studio: Studio) -> SimpleNamespace:
    """Tab 3, animate my recipe: its components."""
    gr.Markdown("Each step image of your last recipe (first tab) goes through ShowMe's video mode with "
                "its step as the instruction: one clip per step, plus one video with the steps as "
                "captions.")
    with gr.Row():
        with gr.Column():
            animate_gallery = gr.Gallery(label="Your recipe's steps", columns=4, height="auto",
                                         elem_classes=["step-gallery"])
            with gr.Accordion("Options", open=False):
                anim_preset, anim_seed, anim_steps, anim_guidance, anim_frames, anim_fps = (
                    _showme_options(gr, studio, "animate", DEFAULT_FRAMES))
            with gr.Row():
                animate_button = gr.Button("Animate every step", variant="primary", elem_id="animate-go")
                animate_stop = gr.Button("Stop", variant="stop")
        with gr.Column():
            stitched = gr.Video(label="The recipe as one video", interactive=False, height=420)
            clip_files = gr.File(label="Downloads: ZIP of all clips with run.json, one MP4 per step",
                                 file_count="multiple")
    return SimpleNamespace(
        animate_gallery=animate_gallery, anim_preset=anim_preset, anim_seed=anim_seed, anim_steps=anim_steps,
        anim_guidance=anim_guidance, anim_frames=anim_frames, anim_fps=anim_fps, animate_button=animate_button,
        animate_stop=animate_stop, stitched=stitched, clip_files=clip_files,
    )


def build_demo(studio: Studio):
    """The Blocks: a banner saying which models run, then three tabs (each built by its own function), then the
    events that connect them."""
    import gradio as gr

    choice, limits = studio.choice, studio.limits
    heavy = dict(concurrency_limit=1, concurrency_id="models", show_progress="full")  # one model call at a time

    with gr.Blocks(title="showme_i2g: show people how to do things", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as demo:
        gr.Markdown("# showme_i2g\nIllustrate a recipe step by step, turn a photo into the moment after an action "
                    "or a short video of it, and animate a whole recipe.")
        gr.Markdown(full_banner(choice, studio.adapters), elem_id="banner")
        recipe_run = gr.State(None)

        with gr.Tabs():
            with gr.Tab("Recipe → illustrations", id="recipe", elem_id="tab-recipe"):
                recipe = _recipe_tab(gr, studio)
            with gr.Tab("Photo → edit / video", id="photo", elem_id="tab-photo"):
                photo_tab = _photo_tab(gr, studio)
            with gr.Tab("Animate my recipe", id="animate", elem_id="tab-animate"):
                animate_tab = _animate_tab(gr, studio)
        # the components the events below connect, by name
        (
            goal, steps_box, plan_count, plan_button, kitchen, illustration_preset, recipe_missing, recipe_seed,
            recipe_steps, recipe_guidance, recipe_size, neighbour, anchor, anchor_weight, illustrate_button,
            recipe_stop, gallery, redraw_step, redraw_button, downloads
        ) = (
            recipe.goal, recipe.steps_box, recipe.plan_count, recipe.plan_button, recipe.kitchen,
            recipe.illustration_preset, recipe.recipe_missing, recipe.recipe_seed, recipe.recipe_steps,
            recipe.recipe_guidance, recipe.recipe_size, recipe.neighbour, recipe.anchor, recipe.anchor_weight,
            recipe.illustrate_button, recipe.recipe_stop, recipe.gallery, recipe.redraw_step, recipe.redraw_button,
            recipe.downloads
        )
        (
            photo, instruction, mode, photo_preset, photo_seed, photo_steps, photo_guidance, photo_frames, photo_fps,
            fit, photo_button, photo_stop, edited, video, photo_files
        ) = (
            photo_tab.photo, photo_tab.instruction, photo_tab.mode, photo_tab.photo_preset, photo_tab.photo_seed,
            photo_tab.photo_steps, photo_tab.photo_guidance, photo_tab.photo_frames, photo_tab.photo_fps,
            photo_tab.fit, photo_tab.photo_button, photo_tab.photo_stop, photo_tab.edited, photo_tab.video,
            photo_tab.photo_files
        )
        (
            animate_gallery, anim_preset, anim_seed, anim_steps, anim_guidance, anim_frames, anim_fps,
            animate_button, animate_stop, stitched, clip_files
        ) = (
            animate_tab.animate_gallery, animate_tab.anim_preset, animate_tab.anim_seed, animate_tab.anim_steps,
            animate_tab.anim_guidance, animate_tab.anim_frames, animate_tab.anim_fps, animate_tab.animate_button,
            animate_tab.animate_stop, animate_tab.stitched, animate_tab.clip_files
        )

        # ---------------------------------------------------------------- events
        def on_illustration_preset(name: str):
            preset = ILLUSTRATION_PRESETS[name]
            return (gr.update(value=min(preset.num_inference_steps, limits.max_inference_steps)),
                    gr.update(value=preset.guidance_scale), gr.update(value=min(preset.size, limits.max_size)),
                    _note_update(gr, choice, "illustration", name))

        illustration_preset.input(on_illustration_preset, illustration_preset,
                                   [recipe_steps, recipe_guidance, recipe_size, recipe_missing], queue=False,
                                   api_visibility="private")

        async def cancellable(call: Callable, *args, **kwargs):
            """``call`` in a worker thread (with this request's context: progress bar, toasts); when the client
            cancels or Stop cancels the job, gradio cancels this coroutine and the run is stopped at its next step."""
            run_id = uuid.uuid4().hex
            try:
                return await asyncio.to_thread(call, *args, run_id=run_id, **kwargs)
            except asyncio.CancelledError:
                studio.running.stop_run(run_id)
                raise

        def budget(seconds: int) -> float | None:
            """On ZeroGPU a run's budget is the GPU time it asked for; elsewhere the machine's (``--run-budget``)."""
            return float(seconds) if zero_gpu() else None

        def recipe_seconds(goal, steps, preset, seed, inference_steps, guidance, size, neighbour_weight, kitchen,
                           anchor, anchor_weight, session, run_id=None, progress=None) -> int:
            items = len(parse_step_lines(steps or "")) + (1 if kitchen else 0)
            return gpu_seconds("recipe", items=items, inference_steps=inference_steps, size=size, guidance=guidance)

        def redraw_seconds(run, steps, step_number, seed, session, run_id=None, progress=None) -> int:
            meta = (run or {}).get("metadata") or {}
            return gpu_seconds("recipe", items=len((run or {}).get("images") or [1]) + (1 if meta.get("reference")
                                                                                         else 0),
                               inference_steps=meta.get("num_inference_steps", 30), size=meta.get("height", 1024),
                               guidance=meta.get("guidance_scale", 5.0))

        def photo_seconds(image, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit,
                          session, run_id=None, progress=None) -> int:
            job = {"edit": "edit", "video": "video"}.get(mode, "photo")
            return gpu_seconds(job, inference_steps=inference_steps, frames=frames)

        def animate_seconds(run, preset, seed, inference_steps, guidance, frames, fps, session, run_id=None,
                            progress=None) -> int:
            return gpu_seconds("animate", items=len((run or {}).get("images") or [1]),
                               inference_steps=inference_steps, frames=frames)

        @gpu(duration=60)
        def plan_on_gpu(goal_text, count, seed, session, run_id=None, progress=None):
            return studio.plan(goal_text, count, seed, session=session, progress=progress, run_id=run_id,
                               budget_s=budget(60))

        async def plan(goal_text, count, seed, request: gr.Request, progress=gr.Progress()):
            return await cancellable(plan_on_gpu, goal_text, count, seed, _session(request), progress=progress)

        @gpu(duration=recipe_seconds)
        def illustrate_on_gpu(goal, steps, preset, seed, inference_steps, guidance, size, neighbour_weight, kitchen,
                              anchor, anchor_weight, session, run_id=None, progress=None):
            return studio.illustrate(goal, steps, preset, seed, inference_steps, guidance, size, neighbour_weight,
                                     kitchen, anchor, anchor_weight, session=session, progress=progress,
                                     run_id=run_id, budget_s=budget(recipe_seconds(
                                         goal, steps, preset, seed, inference_steps, guidance, size, neighbour_weight,
                                         kitchen, anchor, anchor_weight, session)))

        async def illustrate(goal, steps, preset, seed, inference_steps, guidance, size, neighbour_weight,
                             kitchen=None, anchor="none", anchor_weight=1.0, request: gr.Request = None,
                             progress=gr.Progress()):
            """The last three inputs have defaults, so API clients of the plain recipe may leave them out."""
            items, files, run = await cancellable(illustrate_on_gpu, goal, steps, preset, seed, inference_steps,
                                                  guidance, size, neighbour_weight, kitchen, anchor, anchor_weight,
                                                  _session(request), progress=progress)
            return items, files, run, items

        @gpu(duration=redraw_seconds)
        def redraw_on_gpu(run, steps, step_number, seed, session, run_id=None, progress=None):
            return studio.redraw(run, steps, step_number, seed, session=session, progress=progress, run_id=run_id,
                                 budget_s=budget(redraw_seconds(run, steps, step_number, seed, session)))

        async def redraw(run, steps, step_number, request: gr.Request, progress=gr.Progress()):
            seed = secrets.randbelow(MAX_SEED + 1)  # a new seed for the redrawn step; it is recorded in run.json
            items, files, new_run = await cancellable(redraw_on_gpu, run, steps, step_number, seed,
                                                      _session(request), progress=progress)
            return items, files, new_run, items

        def selected_step(event: gr.SelectData):
            return event.index + 1

        @gpu(duration=photo_seconds)
        def photo_on_gpu(image, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit, session,
                         run_id=None, progress=None):
            return studio.photo(image, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit,
                                session=session, progress=progress, run_id=run_id, budget_s=budget(
                                    photo_seconds(image, instruction, mode, preset, seed, inference_steps, guidance,
                                                  frames, fps, fit, session)))

        async def make_photo(image, instruction, mode, preset, seed, inference_steps, guidance, frames, fps, fit,
                             request: gr.Request, progress=gr.Progress()):
            return await cancellable(photo_on_gpu, image, instruction, mode, preset, seed, inference_steps, guidance,
                                     frames, fps, fit, _session(request), progress=progress)

        @gpu(duration=animate_seconds)
        def animate_on_gpu(run, preset, seed, inference_steps, guidance, frames, fps, session, run_id=None,
                           progress=None):
            return studio.animate_recipe(run, preset, seed, inference_steps, guidance, frames, fps, session=session,
                                         progress=progress, run_id=run_id, budget_s=budget(
                                             animate_seconds(run, preset, seed, inference_steps, guidance, frames,
                                                             fps, session)))

        async def animate(run, preset, seed, inference_steps, guidance, frames, fps, request: gr.Request,
                          progress=gr.Progress()):
            return await cancellable(animate_on_gpu, run, preset, seed, inference_steps, guidance, frames, fps,
                                     _session(request), progress=progress)

        def stop(request: gr.Request) -> None:
            studio.stop(_session(request))

        def closed(request: gr.Request) -> None:
            """The page was closed or reloaded: its runs free the model slot at their next step."""
            studio.stop(_session(request))

        recipe_inputs = [goal, steps_box, illustration_preset, recipe_seed, recipe_steps, recipe_guidance,
                         recipe_size, neighbour, kitchen, anchor, anchor_weight]
        photo_inputs = [photo, instruction, mode, photo_preset, photo_seed, photo_steps, photo_guidance, photo_frames,
                        photo_fps, fit]
        animate_inputs = [recipe_run, anim_preset, anim_seed, anim_steps, anim_guidance, anim_frames, anim_fps]
        plan_event = plan_button.click(
            plan, [goal, plan_count, recipe_seed], steps_box, api_name="plan",
            validator=_validator(lambda g, c, s: (_field("goal_text", _clean_goal, g),
                                                  _field("count", _whole, c, "The number of steps", 1,
                                                         MAX_PLANNED_STEPS), _field("seed", _seed, s)),
                                 ["goal_text", "count", "seed"]), **heavy)
        recipe_event = illustrate_button.click(
            illustrate, recipe_inputs, [gallery, downloads, recipe_run, animate_gallery], api_name="illustrate",
            validator=_validator(studio.check_recipe, ["goal", "steps", "preset", "seed", "inference_steps",
                                                       "guidance", "size", "neighbour_weight", "kitchen", "anchor",
                                                       "anchor_weight"]), **heavy)
        gallery.select(selected_step, None, redraw_step, queue=False, api_visibility="private")
        redraw_event = redraw_button.click(
            redraw, [recipe_run, steps_box, redraw_step], [gallery, downloads, recipe_run, animate_gallery],
            api_name="redraw", validator=_validator(studio.check_redraw, ["run", "steps", "step_number"]), **heavy)
        photo_event = photo_button.click(
            make_photo, photo_inputs, [edited, video, photo_files], api_name="photo",
            validator=_validator(studio.check_photo, ["image", "instruction", "mode", "preset", "seed",
                                                      "inference_steps", "guidance", "frames", "fps", "fit"]),
            **heavy)
        animate_event = animate_button.click(
            animate, animate_inputs, [stitched, clip_files], api_name="animate_recipe",
            validator=_validator(studio.check_animation, ["run", "preset", "seed", "inference_steps", "guidance",
                                                          "frames", "fps"]), **heavy)
        events = [plan_event, recipe_event, redraw_event, photo_event, animate_event]
        for button in (recipe_stop, photo_stop, animate_stop):
            public = button is recipe_stop  # one API endpoint is enough: every Stop does the same
            button.click(stop, None, None, cancels=events, queue=False, api_name="stop" if public else None,
                         api_visibility="public" if public else "private")
        demo.unload(closed)
    return demo


def _clean_goal(goal) -> str:
    from showme_i2g.i2g.inputs import clean_goal

    return clean_goal(goal)


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


_IMPORTS = threading.Lock()


def _pipelines():
    """The two pipeline classes, imported by one thread at a time: diffusers imported from two threads at once can
    fail with "partially initialized module" (the page's background import racing a first click)."""
    with _IMPORTS:
        from showme_i2g.i2g.pipeline import IllustrationPipeline
        from showme_i2g.showme.pipeline import ShowMePipeline

    return IllustrationPipeline, ShowMePipeline


def _import_pipelines() -> None:
    """Import torch, diffusers, the pipelines and spaCy (the clause splitter's parser) once the page is up, while it
    waits for its first click: several seconds on a CPU. Models themselves still load lazily, on first use.
    (Importing them while Gradio itself imports is slower: two threads importing at once contend for the locks.)"""
    _pipelines()
    try:
        import spacy  # noqa: F401
    except ImportError:  # the clause splitter then falls back to punctuation
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    trained = TrainedAdapters.from_args(args)
    try:
        trained.check()
        if args.run_budget is not None and not args.run_budget > 0:
            raise InvalidInputError(f"--run-budget must be a positive number of seconds, got {args.run_budget:g}.")
        device = detect_device(args.device)  # imports torch only where a GPU may be present
        on_gpu = device == "cuda"
        limits = HardwareLimits.for_device(device, budget_s=args.run_budget)
        if args.download:  # before the page serves: no request ever waits for a download
            for what in download_weights(args.preset, args.showme_preset, on_gpu=on_gpu, lora_dir=args.lora_dir,
                                         trained_adapters=trained.adapters):
                print(f"Downloaded {what}.", flush=True)
        choice = pick_presets(args.preset, args.showme_preset, lora_dir=args.lora_dir, on_gpu=on_gpu,
                              trained_adapters=trained.adapters)
    except ShowMeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(full_banner(choice, trained).replace("**", "").replace("`", "").replace("  \n", "\n"), flush=True)
    studio = Studio(choice, device=args.device, lora_dir=args.lora_dir, runs_dir=args.runs_dir, adapters=trained,
                    limits=limits)
    if zero_gpu():  # ZeroGPU: models load once, outside the GPU-decorated calls, which then only compute
        studio.preload()
    launch(build_demo(studio), studio, args.host, args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
