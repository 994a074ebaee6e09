"""Ethics report, model card and mitigation measurement, built from a real (tiny) run's numbers."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from reports.ethics import build_report
from reports.mitigation import compare, markdown
from reports.model_card import write_card
from reports.run_data import load_run

pytestmark = pytest.mark.slow


def test_ethics_report_contains_the_measured_numbers(tiny_registered_model):
    uri, result = tiny_registered_model
    data = load_run(result.run_id, mlflow.MlflowClient(uri))
    report = build_report(data)
    assert f"age MAE {result.metrics['test_age_mae']:.3f}" in report
    gaps = data.gaps.set_index(["feature", "metric"])
    race_gap = gaps.loc[("race", "age_mae"), "difference"]
    assert f"gap {race_gap:.3f}" in report
    for heading in ("Where the model is biased", "Patterns in the misclassified samples",
                    "Scenarios where it would do harm", "Validity of the labels", "Negative feedback loops"):
        assert heading in report


def test_model_card_is_written_to_the_registry(tiny_registered_model):
    uri, result = tiny_registered_model
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version_by_alias("utkface-mtl", "champion").version
    card = write_card("utkface-mtl", version, client)
    assert client.get_model_version("utkface-mtl", version).description == card
    assert f"{result.metrics['test_gender_accuracy']:.4f}" in card
    by_race = load_run(result.run_id, client).by_group["race"]
    assert f"{by_race['age_mae'].iloc[0]:.3f}" in card
    assert "Intended use" in card and "Known limits" in card


def _synthetic(seed, asian_error):
    rng = np.random.default_rng(seed)
    n = 2000
    frame = pd.DataFrame({"file": [f"f{i}" for i in range(n)], "age": rng.integers(1, 80, n),
                          "gender": rng.integers(0, 2, n), "race": rng.integers(0, 5, n)})
    frame["pred_age"] = frame["age"] + rng.normal(0, 4, n)
    flip = rng.uniform(size=n) < np.where(frame["race"] == 2, asian_error, 0.06)
    frame["female_probability"] = np.where(frame["gender"] ^ flip, 0.9, 0.1)
    return frame


def test_mitigation_measures_the_gap_change_with_intervals():
    before, after = _synthetic(0, 0.20), _synthetic(0, 0.08)  # same rows; the Asian error rate drops
    result = compare(before, after, feature="race", metric="gender_accuracy", n_boot=200)
    assert result["worst_group"] == "Asian"
    assert result["gap_after"] < result["gap_before"]
    assert result["gap_change_ci"][1] < 0
    text = markdown(result, baseline="a", mitigated="b", description="test")
    assert "The gap shrank" in text
    with pytest.raises(ValueError, match="different test sets"):
        compare(before, after.iloc[:-5], feature="race", metric="gender_accuracy")
