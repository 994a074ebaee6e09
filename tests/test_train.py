"""End to end on real images: one MLflow run, its artifacts, the logged pyfunc, and learned quality."""

import base64

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, temporary_tracking

from mtl.config import from_flat, load_config
from mtl.data import prepare_data
from mtl.train import fit, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _config(utkface_dir, cache_dir, **overrides):
    base = {"data.path": str(utkface_dir), "data.cache_dir": str(cache_dir), "data.subset": 1800,
            "train.epochs": 5, "train.max_minutes": None, "train.patience": 0}
    base.update(overrides)
    return load_config(REPO / "experiments" / "default.yaml", base)


@pytest.fixture(scope="module")
def finished_run(utkface_dir, cache_dir, tmp_path_factory):
    with temporary_tracking(tmp_path_factory.mktemp("mlflow")) as uri:
        cfg = _config(utkface_dir, cache_dir, experiment="e2e")
        result = run(cfg)
        yield cfg, result, mlflow.MlflowClient(uri)


def test_run_logs_params_metrics_and_artifacts(finished_run):
    cfg, result, client = finished_run
    logged = client.get_run(result.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["model.backbone"] == "efficientnet_lite0"
    assert logged.data.params["train.epochs"] == "5"
    assert from_flat(logged.data.params) == cfg  # the run can be rebuilt from its params
    metrics = logged.data.metrics
    for key in ("test_age_mae", "test_age_rmse", "test_age_cs5", "test_age_mae_21_60", "test_gender_accuracy",
                "test_gender_f1", "test_gender_roc_auc", "dq_conflicting_duplicate", "n_test",
                "test_age_interval_coverage"):
        assert key in metrics, key
    assert any(k.startswith("test_age_mae_band_") for k in metrics)
    history = client.get_metric_history(result.run_id, "val_age_mae")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    weights = [m.value for m in client.get_metric_history(result.run_id, "task_weight_age")]
    assert len(set(weights)) > 1  # learned uncertainty weights move and are logged every epoch
    assert logged.data.tags["weights_source"] == "package"
    assert logged.data.tags["stop_reason"] == "all epochs"
    artifacts = {a.path for folder in ("", "data", "plots", "training", "evaluation", "model")
                 for a in client.list_artifacts(result.run_id, folder or None)}
    for path in ("summary.md", "data/data_quality.csv", "data/split_manifest.csv", "data/data_quality.md",
                 "plots/learning_curves.png", "plots/gender_confusion.png", "plots/age_pred_vs_true.png",
                 "training/history.csv", "evaluation/test_predictions.csv", "model/MLmodel"):
        assert path in artifacts, path
    split = pd.read_csv(client.download_artifacts(result.run_id, "data/split_manifest.csv"))
    assert set(split["split"]) == {"train", "val", "test"}
    assert {"file", "age", "gender", "race", "split"} <= set(split.columns)


def test_short_training_beats_the_trivial_baseline(finished_run):
    _, result, _ = finished_run
    m = result.metrics
    assert m["test_age_mae"] < 0.75 * m["test_baseline_age_mae"]
    assert m["test_gender_accuracy"] > m["test_baseline_gender_accuracy"] + 0.12


def test_logged_model_answers_base64_jpegs(finished_run, utkface_dir):
    cfg, result, _ = finished_run
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    test = result.test_predictions.head(8)
    raw = [(utkface_dir / f).read_bytes() for f in test["file"]]
    answer = model.predict(pd.DataFrame({"image": [base64.b64encode(b).decode() for b in raw]}))
    assert list(answer.columns) == ["age", "age_low", "age_high", "gender", "female_probability"]
    assert len(answer) == 8
    assert answer["age"].between(1, 116).all()
    assert (answer["age_low"] <= answer["age"]).all() and (answer["age"] <= answer["age_high"]).all()
    assert answer["female_probability"].between(0, 1).all()
    assert set(answer["gender"]) <= {"male", "female"}
    # the full-size JPEGs give the predictions of the training pipeline's cached 64 px images
    assert np.allclose(answer["age"], test["pred_age"], atol=0.5)
    assert np.allclose(answer["female_probability"], test["female_probability"], atol=0.02)
    from mtl.images import decode_bytes

    as_arrays = model.predict(pd.DataFrame({"image": [decode_bytes(b) for b in raw]}))
    assert np.allclose(as_arrays["age"], answer["age"], atol=1e-4)


def test_same_seed_same_training(utkface_dir, cache_dir):
    cfg = _config(utkface_dir, cache_dir, **{"data.subset": 400, "train.epochs": 1, "train.batch_size": 64})
    data = prepare_data(cfg.data, cfg.seed)
    first, second = fit(cfg, data), fit(cfg, data)
    assert first.history["train_loss"].tolist() == second.history["train_loss"].tolist()
    assert first.metrics["test_age_mae"] == second.metrics["test_age_mae"]


def test_weight_averaging_changes_what_is_evaluated_not_how_it_trains(utkface_dir, cache_dir):
    cfg = _config(utkface_dir, cache_dir, **{"data.subset": 400, "train.epochs": 1, "train.batch_size": 64})
    data = prepare_data(cfg.data, cfg.seed)
    cfg.train.ema_decay = 0.0
    live = fit(cfg, data)
    cfg.train.ema_decay = 0.99
    averaged = fit(cfg, data)
    assert live.history["train_loss"].tolist() == averaged.history["train_loss"].tolist()
    assert live.history["val_age_mae"].iloc[0] != averaged.history["val_age_mae"].iloc[0]
    live_weights, averaged_weights = live.model.state_dict(), averaged.model.state_dict()
    assert not all(torch.equal(live_weights[k], averaged_weights[k]) for k in live_weights)
