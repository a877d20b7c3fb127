"""popnb.figures: Figure 1 drawn from the model object, confusion matrix and per-class recall."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from popnb.figures import (  # noqa: E402
    architecture_figure, confusion_figure, normalised_confusion, per_class_recall, recall_figure,
)
from popnb.models import build_model  # noqa: E402
from popnb.models.summary import model_summary  # noqa: E402

TITLES = ["为什么黑洞会这样？", "10个关于火星的冷知识", "【科普】量子纠缠到底是什么？"]


def drawn_text(fig) -> str:
    """Every text the figure draws (box labels, arrow labels, title), joined."""
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]
    plt.close(fig)
    return "\n".join(texts)


@pytest.fixture(scope="module")
def vit_charbert():
    return build_model("vit_tiny_patch16_224", "charbert-tiny", (0.75, 0.25), image_size=32, titles=TITLES)[0]


def test_architecture_figure_reads_layers_widths_and_weights_from_the_model(vit_charbert):
    vit = vit_charbert.vision.backbone
    text = drawn_text(architecture_figure(vit_charbert))
    assert f"{len(vit.blocks)} transformer blocks" in text and f"width {vit.embed_dim}" in text
    bert = vit_charbert.text.encoder.config
    assert f"{bert.num_hidden_layers} layers, {bert.num_attention_heads} heads" in text
    assert f"width {bert.hidden_size}" in text and "cover 32x32 RGB" in text
    assert "x 0.75" in text and "x 0.25" in text and "0.75*v + 0.25*t" in text
    assert "FC 256 -> 5" in text and f"vocabulary {len(vit_charbert.text.tokenizer)}" in text

    other, _ = build_model("convnext_atto", "gru", (0.3, 0.7), fusion="concat", image_size=32, titles=TITLES,
                           hidden=64, metadata=True)
    text = drawn_text(architecture_figure(other))
    depths = [len(stage.blocks) for stage in other.vision.backbone.stages]
    assert f"{len(depths)} stages, {sum(depths)} blocks" in text and "transformer blocks" not in text
    assert "1 bidirectional GRU layer, hidden 128" in text and "width 256" in text  # 2 x 128, both directions
    assert "x 0.3" in text and "x 0.7" in text and "concat fusion" in text
    assert "FC 192 -> 5" in text and f"FC {other.vision.fc.in_features} -> 64" in text  # concat: 64 + 64 + metadata 64
    assert "metadata MLP" in text and "metadata" not in drawn_text(architecture_figure(vit_charbert))


def test_architecture_figure_follows_a_changed_model(vit_charbert):
    """Cut the ViT to 3 blocks: the figure must say 3, and count fewer parameters."""
    before = model_summary(vit_charbert)["vision"]["params"]
    vit_charbert.vision.backbone.blocks = vit_charbert.vision.backbone.blocks[:3]
    summary = model_summary(vit_charbert)
    assert summary["vision"]["layers"] == "3 transformer blocks" and summary["vision"]["params"] < before
    assert "3 transformer blocks" in drawn_text(architecture_figure(vit_charbert))


def test_confusion_is_normalised_by_true_class():
    y_true, y_pred = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2])
    shares = normalised_confusion(y_true, y_pred)
    np.testing.assert_allclose(shares.iloc[0], [2 / 3, 1 / 3, 0, 0, 0])
    np.testing.assert_allclose(shares.iloc[1], [0, 0.5, 0.5, 0, 0])
    np.testing.assert_allclose(shares.iloc[2], [0, 0, 1, 0, 0])
    assert shares.iloc[3:].isna().all().all()  # classes 3 and 4 never occur: no share to show, not 0
    text = drawn_text(confusion_figure(y_true, y_pred, "demo"))
    assert "0.67\n(2)" in text and "0.50\n(1)" in text and "row-normalised" in text and "demo" in text


def test_per_class_recall_counts_exact_and_neighbouring_hits():
    y_true, y_pred = np.array([0, 0, 1, 4, 4, 4]), np.array([0, 2, 0, 4, 3, 1])
    table = per_class_recall(y_true, y_pred)
    assert table["n_true"].tolist() == [2, 1, 0, 0, 3] and table["n_pred"].tolist() == [2, 1, 1, 1, 1]
    np.testing.assert_allclose(table["recall"], [0.5, 0.0, np.nan, np.nan, 1 / 3])
    np.testing.assert_allclose(table["recall_within_one"], [0.5, 1.0, np.nan, np.nan, 2 / 3])
    fig = recall_figure(table)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    plt.close(fig)
    np.testing.assert_allclose(heights, [*table["recall"], *table["recall_within_one"]])


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="y_pred must be in 0..4"):
        per_class_recall([0, 1], [0, 5])
