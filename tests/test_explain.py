"""LIME on real faces: weights depend on the model, the deletion test runs, the panel is seeded."""

import numpy as np
import pandas as pd
import pytest
import torch

from mtl.config import ModelConfig
from mtl.explain import choose_panel, deletion_test, explain
from mtl.images import decode_bytes
from mtl.model import create_model
from mtl.pyfunc import Predictor


def _predictor(seed: int) -> Predictor:
    torch.manual_seed(seed)
    model, _ = create_model(ModelConfig(backbone="mobilenetv3_small_050", weights="none", bin_width=5))
    return Predictor(model, image_size=48)


@pytest.fixture(scope="module")
def face(utkface_dir, real_names):
    return decode_bytes((utkface_dir / real_names[500]).read_bytes())


@pytest.mark.parametrize("task", ["gender", "age"])
def test_weights_change_with_the_model_and_are_not_constant(face, task):
    first = explain(_predictor(0), face, task=task, num_samples=120, seed=0)
    again = explain(_predictor(0), face, task=task, num_samples=120, seed=0)
    other = explain(_predictor(1), face, task=task, num_samples=120, seed=0)
    segments = sorted(first.weights)
    w1 = np.array([first.weights[s] for s in segments])
    assert np.allclose(w1, [again.weights[s] for s in segments])  # seeded: reproducible
    assert not np.allclose(w1, [other.weights.get(s, 0.0) for s in segments])
    assert np.ptp(w1) > 0
    assert first.segments.shape == face.shape[:2]


def test_deletion_test_reports_top_and_random_changes(face):
    predictor = _predictor(0)
    expl = explain(predictor, face, task="age", num_samples=120, seed=0)
    result = deletion_test(predictor, face, expl, k=5, n_random=4)
    assert set(result) == {"top_change", "random_change", "ratio"}
    assert result["top_change"] >= 0 and result["random_change"] >= 0


def test_panel_is_seeded_and_covers_worst_best_and_groups():
    rng = np.random.default_rng(0)
    preds = pd.DataFrame({"file": [f"f{i}" for i in range(200)], "age": rng.integers(1, 80, 200),
                          "gender": rng.integers(0, 2, 200), "race": rng.integers(0, 5, 200)})
    preds["pred_age"] = preds["age"] + rng.normal(0, 5, 200)
    preds["female_probability"] = rng.uniform(0, 1, 200)
    panel = choose_panel(preds, n_worst=2, n_best=2, n_gender_errors=2, per_group=1, seed=3)
    assert panel.equals(choose_panel(preds, n_worst=2, n_best=2, n_gender_errors=2, per_group=1, seed=3))
    assert {"worst age", "best age", "gender error", "group sample"} <= set(panel["reason"])
    assert panel["file"].is_unique
