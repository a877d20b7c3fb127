"""open_cover turns every good kind of image into RGB; check_cover names what is wrong with a bad one."""
from __future__ import annotations

import pytest
from data_factories import (
    COVER_SIZE, gradient, save_bomb_png, save_jpeg, save_palette_png, save_rgba_png, save_truncated_jpeg,
)
from PIL import Image

from popnb.data.images import MAX_SIDE, CoverError, check_cover, open_cover


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_modes_open_as_rgb_with_the_same_picture(tmp_path, mode):
    path = save_jpeg(tmp_path / f"{mode}.jpg", mode=mode)
    assert check_cover(path, "full") == (mode, COVER_SIZE)
    im = open_cover(path)
    assert (im.mode, im.size) == ("RGB", COVER_SIZE)
    for xy in [(5, 3), (5, 32)]:  # the gradient runs dark (top) to light (bottom): no channel inverted
        gray = gradient("L").getpixel(xy)
        assert all(abs(v - gray) <= 8 for v in im.getpixel(xy)), (xy, gray, im.getpixel(xy))


def test_alpha_is_composited_on_white(tmp_path):
    im = open_cover(save_rgba_png(tmp_path / "alpha.png"))
    assert im.mode == "RGB"
    assert im.getpixel((2, 2)) == (255, 255, 255)  # fully transparent -> white, not the hidden blue
    assert im.getpixel((COVER_SIZE[0] - 2, 2)) == (255, 0, 0)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = open_cover(save_palette_png(tmp_path / "palette.png"))
    assert im.getpixel((2, 2)) == (255, 255, 255)
    assert im.getpixel((COVER_SIZE[0] - 2, 2)) == (0, 0, 255)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    Image.new("I;16", (8, 8), 32768).save(tmp_path / "g16.png")
    assert open_cover(tmp_path / "g16.png").getpixel((0, 0)) == (128, 128, 128)


def test_very_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    path = save_jpeg(tmp_path / "large.jpg", size=(4800, 1600))
    im = open_cover(path)
    assert im.mode == "RGB" and max(im.size) <= MAX_SIDE and im.width / im.height == pytest.approx(3, rel=0.01)
    small = open_cover(path, max_side=224)
    assert small.size == (224, 75)
    with Image.open(path) as lazy:  # draft picks a 1/8 scale for a 224 px target: far less to decode
        lazy.draft(None, (224, 75))
        assert lazy.size == (600, 200)


@pytest.mark.parametrize("level", ["header", "full"])
def test_missing_file(tmp_path, level):
    with pytest.raises(CoverError, match="missing cover file") as err:
        check_cover(tmp_path / "nope.jpg", level)
    assert err.value.reason == "missing cover file"


@pytest.mark.parametrize("level", ["header", "full"])
def test_not_an_image(tmp_path, level):
    (tmp_path / "x.jpg").write_text("<html>404 not found</html>")
    with pytest.raises(CoverError, match="unreadable image: x.jpg: cannot identify image file"):
        check_cover(tmp_path / "x.jpg", level)


def test_truncated_jpeg_is_caught_by_the_full_check(tmp_path):
    path = save_truncated_jpeg(tmp_path / "cut.jpg")
    check_cover(path, "header")  # the header alone looks fine: that is why import decodes fully
    with pytest.raises(CoverError, match="unreadable image: cut.jpg: image file is truncated"):
        check_cover(path, "full")
    with pytest.raises(CoverError, match="truncated"):
        open_cover(path)


def test_decompression_bomb_is_refused_with_its_pixel_count(tmp_path):
    path = save_bomb_png(tmp_path / "bomb.png")
    assert path.stat().st_size < 1000
    for level in ("header", "full"):
        with pytest.raises(CoverError, match="400000000 pixels") as err:
            check_cover(path, level)
        assert err.value.reason == "image too large"


def test_unknown_check_level(tmp_path):
    with pytest.raises(ValueError, match="'header' or 'full'"):
        check_cover(save_jpeg(tmp_path / "a.jpg"), "deep")
