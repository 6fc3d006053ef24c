"""``read_image``: the one image-file reader, by what it returns and by class of refused input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segblocks.data import IMAGE_MODES, ShapesWorld, ShapesWorldConfig, read_image


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return ShapesWorld(ShapesWorldConfig(image_size=(40, 48)), split="val").sample(0).image


def _save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


# ----------------------------------------------------------------------------- what comes back
def test_rgb_png_is_float_rgb_channels_first(pixels: np.ndarray, tmp_path: Path) -> None:
    image = read_image(_save(Image.fromarray(pixels), tmp_path / "a.png"))
    assert image.shape == (3, 40, 48) and image.dtype == torch.float32 and image.is_contiguous()
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0)
    back = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(back, pixels)  # the documented way back to the stored bytes


def test_str_and_pathlike_paths_read_the_same(pixels: np.ndarray, tmp_path: Path) -> None:
    path = _save(Image.fromarray(pixels), tmp_path / "a.png")
    assert torch.equal(read_image(str(path)), read_image(path))


def test_grey_is_repeated_in_three_channels(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = read_image(_save(Image.fromarray(grey, mode="L"), tmp_path / "grey.png"))
    assert image.shape == (3, 3, 4)
    for c in range(3):
        assert torch.equal(image[c], torch.from_numpy(grey).float() / 255.0)


def test_palette_is_looked_up(pixels: np.ndarray, tmp_path: Path) -> None:
    palette = Image.fromarray(pixels).quantize(colors=16)
    expected = np.asarray(palette.convert("RGB"))
    image = read_image(_save(palette, tmp_path / "p.png"))
    np.testing.assert_array_equal((image.permute(1, 2, 0) * 255).round().byte().numpy(), expected)


def test_opaque_alpha_is_dropped(pixels: np.ndarray, tmp_path: Path) -> None:
    rgba = np.concatenate([pixels, np.full((*pixels.shape[:2], 1), 255, np.uint8)], axis=2)
    image = read_image(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png"))
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0)


def test_jpeg_and_a_multi_frame_gif(pixels: np.ndarray, tmp_path: Path) -> None:
    assert read_image(_save(Image.fromarray(pixels), tmp_path / "a.jpg")).shape == (3, 40, 48)
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    first = read_image(tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as gif:
        expected = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal((first.permute(1, 2, 0) * 255).round().byte().numpy(), expected)


# ----------------------------------------------------------------------------- not a path
@pytest.mark.parametrize("bad", [None, 3, b"a.png", np.zeros((2, 2, 3), np.uint8)])
def test_a_path_of_another_type(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^image: expected an image file path \(str or os.PathLike\), got "):
        read_image(bad, name="image")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- no file there
def test_a_missing_file_names_the_argument(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^--image: no such image file '.*nope\.png'$"):
        read_image(tmp_path / "nope.png", name="--image")
    with pytest.raises(FileNotFoundError, match=r"^path: no such image file"):
        read_image(tmp_path / "nope.png")


def test_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"^path: '.*' is a folder, not an image file$"):
        read_image(tmp_path)


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_a_device_is_not_a_regular_file() -> None:
    with pytest.raises(ValueError, match=r"^path: '/dev/null' is not a regular file"):
        read_image("/dev/null")


def test_a_file_that_may_not_be_read(
    pixels: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(Image.fromarray(pixels), tmp_path / "locked.png")
    if os.geteuid() != 0:  # a real permission bit where the user is not root
        path.chmod(0)
    else:  # root reads any file: stand in for the kernel's refusal

        def refuse(*args: object, **kwargs: object) -> Image.Image:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(
        PermissionError, match=r"^path: '.*locked\.png' may not be read \(permission denied\)$"
    ):
        read_image(path)


# ----------------------------------------------------------------------------- not an image
def test_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"^path: '.*empty\.png' is an empty file \(0 bytes\), not an image$"
    ):
        read_image(tmp_path / "empty.png")


@pytest.mark.parametrize(
    "content",
    [b"not an image at all", b'{"annotations": []}', b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
    ids=["text", "json", "png-signature-only"],
)
def test_a_foreign_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(ValueError, match=r"^image_path: '.*x\.png' is not a readable image \("):
        read_image(tmp_path / "x.png", name="image_path")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_truncated_image(pixels: np.ndarray, tmp_path: Path, suffix: str) -> None:
    whole = _save(Image.fromarray(pixels), tmp_path / f"whole{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"is not a readable image"):
        read_image(tmp_path / f"cut{suffix}")


def test_an_image_past_pils_size_guard(
    pixels: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(Image.fromarray(pixels), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40 x 48 is then more than twice the limit
    with pytest.raises(ValueError, match=r"^path: '.*big\.png' is too large to decode"):
        read_image(path)


def test_an_image_without_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PIL's own formats refuse to write or open a 0-pixel image; a plugin could still produce one.
    (tmp_path / "flat.png").write_bytes(b"placeholder bytes")
    monkeypatch.setattr(Image, "open", lambda *a, **k: Image.new("RGB", (0, 7)))
    with pytest.raises(ValueError, match=r"^path: '.*flat\.png' has no pixels \(0 x 7\)$"):
        read_image(tmp_path / "flat.png")


# ----------------------------------------------------------------------------- pixels it will not guess
@pytest.mark.parametrize(
    ("image", "mode"),
    [
        (Image.fromarray(np.full((4, 4), 40000, np.uint16)), "I;16"),
        (Image.new("I", (4, 4), 70000), "I"),
        (Image.new("F", (4, 4), 0.5), "F"),
    ],
    ids=["16-bit", "32-bit", "float"],
)
def test_high_bit_depth_is_refused(image: Image.Image, mode: str, tmp_path: Path) -> None:
    path = _save(image, tmp_path / "deep.tiff")
    with Image.open(path) as check:
        assert check.mode == mode
    with pytest.raises(ValueError, match=rf"^path: '.*deep\.tiff' has PIL mode '{mode}'; expected 8-bit"):
        read_image(path)


def test_another_colour_space_is_refused(tmp_path: Path) -> None:
    path = _save(Image.new("LAB", (4, 4)), tmp_path / "lab.tiff")
    with pytest.raises(ValueError, match=r"has PIL mode 'LAB'; expected 8-bit RGB, grey or palette"):
        read_image(path)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_are_refused(pixels: np.ndarray, tmp_path: Path, mode: str) -> None:
    image = Image.fromarray(pixels).convert(mode)
    alpha = np.full(pixels.shape[:2], 255, np.uint8)
    alpha[0, 0] = 10
    image.putalpha(Image.fromarray(alpha))
    path = _save(image, tmp_path / "cutout.png")
    with pytest.raises(ValueError, match=r"^path: '.*cutout\.png' has transparent pixels \(alpha down to 10"):
        read_image(path)


def test_a_transparent_palette_colour_is_refused(tmp_path: Path) -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putpixel((0, 0), 0)
    image.save(tmp_path / "t.png", transparency=0)
    with pytest.raises(ValueError, match=r"has transparent pixels \(alpha down to 0"):
        read_image(tmp_path / "t.png")


@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_every_accepted_mode_reads_as_pils_rgb(pixels: np.ndarray, tmp_path: Path, mode: str) -> None:
    path = _save(Image.fromarray(pixels).convert(mode), tmp_path / f"{mode}.tiff")
    with Image.open(path) as stored:
        assert stored.mode == mode
        expected = np.asarray(stored.convert("RGB"))
    image = read_image(path)
    assert image.shape == (3, 40, 48)
    np.testing.assert_array_equal((image.permute(1, 2, 0) * 255).round().byte().numpy(), expected)
