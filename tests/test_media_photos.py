"""User photos in (load, fit, restore) and videos out; every test file is built here in tmp_path, nothing is shipped."""

from __future__ import annotations

import io
import struct
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from showme_i2g.errors import InvalidInputError
from showme_i2g.media import (
    AnimatedPhotoWarning,
    FitInfo,
    fit_photo,
    load_photo,
    read_video_frames,
    restore_photo,
    save_video,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.endswith("."), message
    assert isinstance(error.value, ValueError)
    return message


def _close(pixel, expected, tolerance=12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


def _noise_jpeg(path, size=(256, 256)) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=95)


# --- refusals -----------------------------------------------------------------------------------------------------


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InvalidInputError) as error:
        load_photo(tmp_path / "nope.jpg")
    assert "nope.jpg" in _one_sentence(error)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "recipe.jpg"
    path.write_text("2 eggs, a pinch of salt\n")
    with pytest.raises(InvalidInputError) as error:
        load_photo(path)
    assert "not a picture" in _one_sentence(error)
    with pytest.raises(InvalidInputError):
        load_photo(path.read_bytes())


def test_truncated_jpeg_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    whole = tmp_path / "whole.jpg"
    _noise_jpeg(whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    assert load_photo(whole).size == (256, 256)
    with pytest.raises(InvalidInputError) as error:
        load_photo(cut)
    assert "damaged" in _one_sentence(error)


def test_tiny_image_is_refused(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), RED).save(path)
    with pytest.raises(InvalidInputError) as error:
        load_photo(path)
    assert "1x1" in _one_sentence(error)
    assert load_photo(path, min_side=1).size == (1, 1)


def _png_claiming(path, width: int, height: int) -> None:
    """A small real PNG whose header says width x height: the pixels are never there, so only the header is read."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 0).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("side", [20_000, 8_000])  # 400 MP trips Pillow's own bomb check; 64 MP only ours
def test_huge_image_refused_from_its_header(tmp_path, side):
    path = tmp_path / "huge.png"
    _png_claiming(path, side, side)
    assert struct.unpack(">II", path.read_bytes()[16:24]) == (side, side)
    rss_before = _max_rss_mb()
    started = time.perf_counter()
    with pytest.raises(InvalidInputError) as error:
        load_photo(path)
    assert time.perf_counter() - started < 1.0
    assert _max_rss_mb() - rss_before < 100  # a decoded 8,000 x 8,000 greyscale picture alone would be 64 MB + 400 MB
    assert "too large" in _one_sentence(error)


def test_max_pixels_is_the_limit(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (200, 100), GREEN).save(path)
    with pytest.raises(InvalidInputError) as error:
        load_photo(path, max_pixels=10_000)
    assert "200x100" in _one_sentence(error)


def _max_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --- colour modes -------------------------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb_with_the_right_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    cmyk = Image.new("CMYK", (32, 32), (255, 0, 0, 0))  # pure cyan
    cmyk.paste((0, 0, 0, 255), (16, 0, 32, 32))  # pure black on the right
    cmyk.save(path, "JPEG", quality=95)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert _close(photo.getpixel((4, 16)), (0, 255, 255))
    assert _close(photo.getpixel((28, 16)), (0, 0, 0))


def test_sixteen_bit_png_keeps_its_full_range(tmp_path):
    path = tmp_path / "deep.png"
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(path)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")  # really a 16-bit file, not Pillow quietly making it 8-bit
    pixels = np.asarray(load_photo(path))
    row = pixels[8, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 200  # a ramp, not clipped to white
    assert abs(row[128] - 128) <= 1
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_greyscale_becomes_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (20, 20), 77).save(path)
    photo = load_photo(path)
    assert photo.mode == "RGB" and photo.getpixel((3, 3)) == (77, 77, 77)


def test_rgba_and_palette_transparency_go_on_white(tmp_path):
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (20, 0, 40, 10))
    rgba.paste((0, 0, 0, 128), (20, 10, 40, 20))
    rgba.save(tmp_path / "rgba.png")
    photo = load_photo(tmp_path / "rgba.png")
    assert photo.mode == "RGB"
    assert photo.getpixel((5, 5)) == (255, 255, 255)
    assert photo.getpixel((30, 5)) == RED
    assert _close(photo.getpixel((30, 15)), (127, 127, 127), 2)

    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (10, 0, 20, 20))
    palette.save(tmp_path / "palette.png", transparency=0)
    photo = load_photo(tmp_path / "palette.png")
    assert photo.getpixel((2, 2)) == (255, 255, 255) and photo.getpixel((15, 2)) == BLUE


def _animation(path, fmt: str) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN, BLUE)]
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.mark.parametrize("suffix,fmt", [(".gif", "GIF"), (".png", "PNG"), (".webp", "WEBP")])
def test_animation_gives_its_first_frame_with_a_warning(tmp_path, suffix, fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    path = tmp_path / f"moving{suffix}"
    _animation(path, fmt)
    with pytest.warns(AnimatedPhotoWarning, match="first frame"):
        photo = load_photo(path)
    assert photo.mode == "RGB" and photo.size == (32, 32)
    assert _close(photo.getpixel((16, 16)), RED, 20)


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (80, 40), BLUE)
    stored.paste(RED, (0, 0, 16, 16))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    photo = load_photo(path)
    assert photo.size == (40, 80)
    assert _close(photo.getpixel((40 - 5, 5)), RED, 30)  # now in the top-right corner
    assert _close(photo.getpixel((5, 5)), BLUE, 30)
    assert _close(photo.getpixel((5, 80 - 5)), BLUE, 30)


def test_bytes_and_pil_sources(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), GREEN).save(buffer, "PNG")
    assert load_photo(buffer.getvalue()).getpixel((1, 1)) == GREEN
    original = Image.new("LA", (30, 20), (10, 255))
    photo = load_photo(original)
    assert photo.mode == "RGB" and photo is not original and original.mode == "LA"


# --- fit and restore ----------------------------------------------------------------------------------------------


def _three_stripes(width=300, height=200) -> Image.Image:
    image = Image.new("RGB", (width, height), GREEN)
    image.paste(RED, (0, 0, width // 6, height))
    image.paste(BLUE, (width - width // 6, 0, width, height))
    return image


def test_fit_crop_and_restore():
    fitted, info = fit_photo(_three_stripes(), (128, 128), "crop")
    assert fitted.size == (128, 128)
    assert info == FitInfo(mode="crop", original_size=(200, 300), target_size=(128, 128), box=(50, 0, 250, 200))
    assert _close(fitted.getpixel((2, 64)), GREEN, 2)  # the red and blue edges were cut off
    restored = restore_photo(fitted.resize((512, 512)), info)  # a model may answer at another size
    assert restored.size == (200, 200)
    # a portrait photo into a landscape target keeps the middle band
    fitted, info = fit_photo(Image.new("RGB", (100, 200), GREEN), (64, 128), "crop")
    assert fitted.size == (128, 64) and info.box == (0, 75, 100, 125)
    assert restore_photo(fitted, info).size == (100, 50)


def test_fit_pad_and_restore_gives_the_original_aspect():
    photo = _three_stripes()
    fitted, info = fit_photo(photo, (128, 128), "pad")
    assert fitted.size == (128, 128)
    left, top, right, bottom = info.box
    assert (left, right) == (0, 128) and bottom - top == 85 and top == 21
    assert fitted.getpixel((64, 5)) == (128, 128, 128) and fitted.getpixel((64, 125)) == (128, 128, 128)
    for result in (fitted, fitted.resize((256, 256), Image.Resampling.LANCZOS)):
        restored = restore_photo(result, info)
        assert restored.size == photo.size  # exactly the photo's aspect (and size)
        assert _close(restored.getpixel((10, 100)), RED, 30) and _close(restored.getpixel((290, 100)), BLUE, 30)
        assert _close(restored.getpixel((150, 3)), GREEN, 30)  # no grey band left at the top
    assert restore_photo(fitted, info, max_side=150).size == (150, 100)


def test_fit_pad_edge_and_bad_mode():
    photo = _three_stripes()
    fitted, info = fit_photo(photo, (128, 128), "pad", pad_colour="edge")
    assert _close(fitted.getpixel((64, 0)), fitted.getpixel((64, info.box[1])), 0)
    with pytest.raises(InvalidInputError) as error:
        fit_photo(photo, (128, 128), "stretch")
    assert "'crop' or 'pad'" in _one_sentence(error)


# --- videos -------------------------------------------------------------------------------------------------------


def _colour_frames(count: int, width: int, height: int) -> np.ndarray:
    frames = np.zeros((count, height, width, 3), dtype=np.float32)
    for index in range(count):
        frames[index, ..., index % 3] = 1.0
        frames[index, ..., (index + 1) % 3] = index / count
    return frames


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_round_trip(tmp_path, suffix):
    frames = _colour_frames(6, 64, 48)
    path = save_video(frames, tmp_path / "out" / f"clip{suffix}", fps=8)
    assert path == tmp_path / "out" / f"clip{suffix}"
    back = read_video_frames(path)
    assert len(back) == 6
    assert all(frame.shape == (48, 64, 3) and frame.dtype == np.uint8 for frame in back)
    expected = np.rint(frames[3, 24, 32] * 255)
    assert _close(back[3][24, 32], expected, 20)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind
    if suffix == ".gif":
        with Image.open(path) as gif:
            assert gif.info.get("loop") == 0 and gif.info.get("duration") == 120  # 1000 / 8 fps, in GIF's 1/100 s steps


def test_mp4_from_pil_frames_with_odd_size(tmp_path):
    images = [Image.new("RGB", (33, 21), colour) for colour in (RED, GREEN, BLUE, RED)]
    back = read_video_frames(save_video(images, tmp_path / "odd.mp4", fps=4))
    assert len(back) == 4 and back[0].shape == (22, 34, 3)  # yuv420p needs even sides: one edge row/column added
    assert _close(back[1][10, 16], GREEN, 30) and _close(back[1][21, 33], GREEN, 30)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, suffix):
    target = tmp_path / f"clip{suffix}"
    target.write_bytes(b"previous video")
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), GREEN), Image.new("RGB", (16, 16), BLUE)]
    with pytest.raises(InvalidInputError) as error:
        save_video(frames, target)
    assert "same size" in _one_sentence(error)
    assert target.read_bytes() == b"previous video"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_video_refusals(tmp_path):
    with pytest.raises(InvalidInputError) as error:
        save_video(_colour_frames(2, 16, 16), tmp_path / "clip.avi")
    assert ".avi" in _one_sentence(error)
    with pytest.raises(InvalidInputError):
        save_video([], tmp_path / "clip.mp4")
    with pytest.raises(InvalidInputError):
        read_video_frames(tmp_path / "missing.mp4")
    assert list(tmp_path.iterdir()) == []
