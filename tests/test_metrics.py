"""popnb.metrics on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scipy.stats import spearmanr

from popnb.metrics import (
    all_metrics,
    class_metrics,
    constant_baseline,
    exact_accuracy,
    macro_f1,
    mae,
    ordinal_accuracy,
    quadratic_weighted_kappa,
    score_metrics,
    spearman,
    spearman_expected,
)


def one_hot(labels) -> np.ndarray:
    return np.eye(5)[np.asarray(labels)]


def test_ordinal_and_exact_accuracy():
    y_true = [0, 1, 2, 3, 4]
    y_pred = [0, 2, 4, 3, 3]
    # gaps 0, 1, 2, 0, 1 -> points 1 + 0.5 + 0 + 1 + 0.5 = 3 over 5
    assert ordinal_accuracy(y_true, y_pred) == pytest.approx(0.6)
    # 2 exact out of 5
    assert exact_accuracy(y_true, y_pred) == pytest.approx(0.4)


def test_macro_f1_over_present_classes():
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0]
    # class 0: tp 1, fp 1, fn 1 -> 2/(2+1+1) = 0.5
    # class 1: tp 2, fp 1, fn 0 -> 4/(4+1) = 0.8
    # class 2: tp 0, fn 1 -> 0; classes 3 and 4 appear nowhere and are left out
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) == pytest.approx(1.0)


def test_quadratic_weighted_kappa():
    y = [0, 1, 2, 3, 4, 2]
    assert quadratic_weighted_kappa(y, y) == pytest.approx(1.0)
    # reversed: pred = 4 - true; weights (i-j)^2/16; observed sum = (16 + 4 + 0 + 4 + 16)/16 = 2.5
    # chance table 1/5 per cell, sum_ij (i-j)^2 = 100 -> 0.2 * 100/16 = 1.25 -> kappa = 1 - 2.5/1.25 = -1
    assert quadratic_weighted_kappa([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]) == pytest.approx(-1.0)
    # true [0,0,1,1], pred [0,1,1,1]: observed weighted sum = 1/16 (one (0,1) cell);
    # chance = outer([2,2],[1,3])/4 -> off-diagonal cells 1.5 + 0.5 -> 2/16; kappa = 1 - 1/2 = 0.5
    assert quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    # documented convention: a constant side carries no agreement beyond chance -> 0.0 (also for 0/0)
    assert quadratic_weighted_kappa([2, 2, 2], [2, 2, 2]) == 0.0
    assert quadratic_weighted_kappa([0, 1, 4], [1, 1, 1]) == 0.0


def test_spearman_expected_matches_pandas_and_a_hand_case():
    # expected classes 1, 2, 2, 3 vs score 1, 3, 2, 2: average ranks (1, 2.5, 2.5, 4) and (1, 4, 2.5, 2.5);
    # centred (-1.5, 0, 0, 1.5) and (-1.5, 1.5, 0, 0): 2.25 / sqrt(4.5 * 4.5) = 0.5
    assert spearman_expected(one_hot([1, 2, 2, 3]), [1.0, 3.0, 2.0, 2.0]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 5))
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_prob[:20] = y_prob[0]  # tied expected classes
    score = rng.integers(0, 30, 200).astype(float)  # tied scores
    reference = pd.DataFrame({"e": y_prob @ np.arange(5), "s": score}).corr(method="spearman").loc["e", "s"]
    assert spearman_expected(y_prob, score) == pytest.approx(reference, abs=1e-12)
    assert spearman_expected(one_hot([2, 2, 2]), [1.0, 2.0, 3.0]) == 0.0  # constant side: documented 0.0


def test_constant_baseline_paper_text_only_row():
    # Table 1, text only: 0.4659 valid accuracy at every epoch, one class predicted.
    # A label mix that gives it: counts [2000, 2659, 2000, 1841, 1500], N = 10000.
    # points per constant: c0 2000+0.5*2659 = 3329.5; c1 2659+0.5*(2000+2000) = 4659;
    # c2 2000+0.5*(2659+1841) = 4250; c3 1841+0.5*(2000+1500) = 3591; c4 1500+0.5*1841 = 2420.5
    y_true = np.repeat(np.arange(5), [2000, 2659, 2000, 1841, 1500])
    assert constant_baseline(y_true) == (1, pytest.approx(0.4659))
    assert ordinal_accuracy(y_true, np.full(10000, 1)) == pytest.approx(0.4659)
    metrics = all_metrics(y_true, one_hot(np.full(10000, 1)))
    assert metrics["ordinal_accuracy"] == metrics["constant_baseline_accuracy"] == pytest.approx(0.4659)


def test_best_constant_is_not_always_the_majority_class():
    # counts [5, 0, 4, 3, 0], N = 12: majority is class 0 (5 points, 5/12);
    # c1 0+0.5*(5+4) = 4.5; c2 4+0.5*(0+3) = 5.5; c3 3+0.5*(4+0) = 5; c4 0+0.5*3 = 1.5 -> class 2, 5.5/12
    y_true = np.repeat(np.arange(5), [5, 0, 4, 3, 0])
    best, accuracy = constant_baseline(y_true)
    assert (best, accuracy) == (2, pytest.approx(5.5 / 12))
    assert np.bincount(y_true).argmax() == 0
    assert accuracy == max(ordinal_accuracy(y_true, np.full(12, c)) for c in range(5))


def test_all_metrics_keys_and_values():
    y_true = [0, 1, 2, 3, 4]
    y_prob = np.array(
        [[0.7, 0.3, 0, 0, 0], [0, 0.2, 0.8, 0, 0], [0, 0, 0, 0.1, 0.9], [0, 0, 0, 1, 0], [0, 0, 0, 0.6, 0.4]]
    )  # argmax 0, 2, 4, 3, 3: the ordinal case above
    m = all_metrics(y_true, y_prob, score=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert m["n"] == 5
    assert m["ordinal_accuracy"] == pytest.approx(0.6) and m["exact_accuracy"] == pytest.approx(0.4)
    assert m["macro_f1"] == pytest.approx(macro_f1(y_true, [0, 2, 4, 3, 3]))
    assert m["quadratic_weighted_kappa"] == pytest.approx(quadratic_weighted_kappa(y_true, [0, 2, 4, 3, 3]))
    # expected classes 0.3, 1.8, 3.9, 3.0, 3.4 rank 1, 2, 5, 3, 4 against 1..5: 1 - 6*(0+0+4+1+1)/(5*24) = 0.7
    assert m["spearman_expected"] == pytest.approx(0.7)
    assert m["constant_baseline_class"] == 1  # uniform counts: c1 1+1 = 2 beats c0 1.5, ties with c2, c3 -> lowest
    assert m["constant_baseline_accuracy"] == pytest.approx(2 / 5)
    assert all_metrics(y_true, y_prob)["spearman_expected"] is None
    assert list(m) == ["n", "ordinal_accuracy", "exact_accuracy", "macro_f1", "quadratic_weighted_kappa",
                       "spearman_expected", "constant_baseline_class", "constant_baseline_accuracy"]


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="y_pred must be in 0..4; position 1 is 5"):
        ordinal_accuracy([0, 1], [0, 5])
    with pytest.raises(ValueError, match="y_true must be in 0..4"):
        exact_accuracy([-1, 1], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        macro_f1([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="integer class labels"):
        quadratic_weighted_kappa([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"shape \[N, 5\]"):
        all_metrics([0, 1], np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="sum to 1"):
        all_metrics([0, 1], np.ones((2, 5)))
    with pytest.raises(ValueError, match="score must be 2 finite numbers"):
        spearman_expected(one_hot([0, 1]), [1.0, 2.0, 3.0])


def test_spearman_of_real_scores():
    truth = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6])
    # a strictly increasing map keeps every rank: the centred rank vectors are equal, so the ratio is 1
    # up to the rounding of one sum of 6 squares (1e-12 is far above it)
    assert spearman(truth, np.exp(truth)) == pytest.approx(1.0, abs=1e-12)
    assert spearman(truth, -truth) == pytest.approx(-1.0, abs=1e-12)
    assert spearman([1.0, 3.0, 2.0, 2.0], [1, 2, 2, 3]) == pytest.approx(0.5)  # the hand case above, both orders
    assert np.isnan(spearman(truth, np.full(6, 2.5)))  # a constant prediction ranks nothing: undefined
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 10, 300).astype(float), rng.normal(size=300).round(1)  # ties on both sides
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_mae_and_score_metrics():
    assert mae([0.0, 1.0, 2.0], [1.0, 1.0, 0.0]) == pytest.approx(1.0)  # |-1| + 0 + 2 over 3
    m = score_metrics([0.0, 1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 2.5, 3.0, 3.5])
    # monotone prediction -> spearman 1; errors 0.5, 0, 0.5, 0, 0.5 -> mae 0.3
    assert m == {"n": 5, "spearman": pytest.approx(1.0), "mae": pytest.approx(0.3)}
    with_classes = score_metrics([0.0, 1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 2.5, 3.0, 3.5], [0, 1, 2, 3, 4], [0, 2, 4, 3, 3])
    assert with_classes == {**m, **class_metrics([0, 1, 2, 3, 4], [0, 2, 4, 3, 3])}
    assert with_classes["ordinal_accuracy"] == pytest.approx(0.6)  # the ordinal hand case above
    with pytest.raises(ValueError, match="3 classes for 2 scores"):
        score_metrics([0.0, 1.0], [0.0, 1.0], [0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="y_pred is NaN or inf at 1 position.*first at 1"):
        spearman([0.0, 1.0, 2.0], [0.0, np.nan, 2.0])
    with pytest.raises(ValueError, match=r"y_pred must be 1-D of length 3 \(as y_true\), got shape \(2,\)"):
        mae([0.0, 1.0, 2.0], [0.0, 1.0])
