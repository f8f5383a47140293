"""Files in and out that are not a model's business: a user's photo (:mod:`.photos`) and videos (:mod:`.videos`).

Kept apart from the pipelines, which return images and never write files. A run's own files (step images, the
storyboard, ``run.json``) are :mod:`showme_i2g.outputs`.
"""

from .photos import DEFAULT_PAD_COLOUR, FIT_MODES, AnimatedPhotoWarning, FitInfo, fit_photo, load_photo, restore_photo
from .videos import (
    DEFAULT_FPS,
    VideoInfo,
    ffmpeg_header,
    probe_video,
    read_video_frame,
    read_video_frames,
    save_video,
)

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_PAD_COLOUR",
    "FIT_MODES",
    "AnimatedPhotoWarning",
    "FitInfo",
    "VideoInfo",
    "ffmpeg_header",
    "fit_photo",
    "load_photo",
    "probe_video",
    "read_video_frame",
    "read_video_frames",
    "restore_photo",
    "save_video",
]
