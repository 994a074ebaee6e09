"""MetricFrame-based per-group metrics against a hand computation on a tiny fixture."""

import numpy as np
import pandas as pd
import pytest

from mtl.fairness import evaluate_fairness, worst_group_overrepresentation


@pytest.fixture
def tiny():
    # race 0 (White): 4 people, race 1 (Black): 4 people; gender 1 = female
    return pd.DataFrame({
        "age":      [20, 30, 40, 50, 20, 30, 40, 50],
        "gender":   [1, 1, 0, 0, 1, 1, 0, 0],
        "race":     [0, 0, 0, 0, 1, 1, 1, 1],
        "pred_age": [22, 30, 37, 50, 30, 20, 40, 58],
        "female_probability": [0.9, 0.8, 0.2, 0.6, 0.9, 0.3, 0.1, 0.2],
    })


def test_per_group_values_match_hand_computation(tiny):
    result = evaluate_fairness(tiny, n_boot=0)
    race = result.by_group["race"]
    # White: |errors| 2, 0, 3, 0 -> 1.25; Black: 10, 10, 0, 8 -> 7.0
    assert race.loc["White", "age_mae"] == pytest.approx(1.25)
    assert race.loc["Black", "age_mae"] == pytest.approx(7.0)
    # predicted female: White [1,1,0,1], Black [1,0,0,0]
    assert race.loc["White", "gender_accuracy"] == pytest.approx(0.75)
    assert race.loc["Black", "gender_accuracy"] == pytest.approx(0.75)
    assert race.loc["White", "selection_rate"] == pytest.approx(0.75)
    assert race.loc["Black", "selection_rate"] == pytest.approx(0.25)
    assert race.loc["White", "false_positive_rate"] == pytest.approx(0.5)  # 1 of 2 men called female
    assert race.loc["Black", "false_negative_rate"] == pytest.approx(0.5)  # 1 of 2 women called male
    gaps = result.gaps.set_index(["feature", "metric"])
    assert gaps.loc[("race", "age_mae"), "difference"] == pytest.approx(5.75)
    assert gaps.loc[("race", "age_mae"), "ratio"] == pytest.approx(1.25 / 7.0)
    assert gaps.loc[("race", "age_mae"), "worst_group"] == "Black"
    assert result.summary["fair_age_mae_gap_race"] == pytest.approx(5.75)
    assert result.summary["fair_gender_dp_diff_race"] == pytest.approx(0.5)
    # equalized odds difference: max(|TPR gap|, |FPR gap|) = max(|1 - 0.5|, |0.5 - 0|) = 0.5
    assert result.summary["fair_gender_eo_diff_race"] == pytest.approx(0.5)


def test_bootstrap_intervals_bracket_the_estimates(tiny):
    big = pd.concat([tiny] * 40, ignore_index=True)
    result = evaluate_fairness(big, n_boot=200, seed=1)
    race = result.by_group["race"]
    for group in ("White", "Black"):
        assert race.loc[group, "age_mae_ci_low"] <= race.loc[group, "age_mae"] <= race.loc[group, "age_mae_ci_high"]
    row = result.gaps.set_index(["feature", "metric"]).loc[("race", "age_mae")]
    assert row["difference_ci_low"] <= row["difference"] <= row["difference_ci_high"]
    assert row["difference_ci_low"] > 0  # the gap is real at this sample size


def test_missing_column_is_named(tiny):
    with pytest.raises(ValueError, match="pred_age"):
        evaluate_fairness(tiny.drop(columns="pred_age"))


def test_overrepresentation_among_worst_errors(tiny):
    table = worst_group_overrepresentation(tiny, share=0.25)
    worst = table[(table["set"] == "worst_age_errors") & (table["feature"] == "race")].set_index("group")
    # the two largest errors (10, 10) are both Black: share 1.0 of the set vs 0.5 of the split
    assert worst.loc["Black", "ratio"] == pytest.approx(2.0, rel=0.01)
    assert np.isclose(worst["share_of_set"].sum(), 1.0)
