"""`mlflow run .` as a newcomer runs it (local env manager, smoke config), against a temp store."""

import os
import subprocess
import sys

import mlflow
import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.slow


def test_entry_points_declare_typed_parameters():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    points = project["entry_points"]
    assert {"main", "train", "tune", "promote", "eda", "ethics", "mitigation", "model_card"} <= set(points)
    assert "tuning.study" in points["main"]["command"] and "--timeout {timeout}" in points["main"]["command"]
    assert float(points["main"]["parameters"]["timeout"]["default"]) <= 30 * 60  # the default study's budget
    assert {"data", "config", "seed"} <= set(points["train"]["parameters"])
    assert {"n_trials", "timeout", "epochs", "subset", "search_space", "storage", "n_workers"} <= set(
        points["tune"]["parameters"])
    for point in points.values():
        assert all("type" in spec for spec in point.get("parameters", {}).values())


def _mlflow_run(args: list[str], tracking_uri: str, cwd) -> None:
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")}
    env = {**inherited, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    subprocess.run([sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", *args],
                   env=env, check=True, cwd=cwd, timeout=900)


def test_mlflow_run_tune_runs_a_study_and_registers_its_best_model(utkface_dir, tmp_path, mlflow_store, tiny_space):
    _mlflow_run(["-e", "tune", "--experiment-name", "tiny-tune", "-P", f"data={utkface_dir}",
                 "-P", f"search_space={tiny_space}", "-P", "n_trials=2", "-P", "epochs=1", "-P", "subset=300",
                 "-P", "image_size=32", "-P", f"storage={tmp_path / 'journal.log'}", "-P", "pruner=none",
                 "-P", "timeout=600"], mlflow_store, tmp_path)
    runs = mlflow.search_runs(experiment_names=["tiny-tune"])
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1 and parent.iloc[0]["status"] == "FINISHED"
    assert parent.iloc[0]["metrics.trials_complete"] == 2
    assert (runs["tags.mlflow.parentRunId"] == parent.iloc[0]["run_id"]).sum() == 2
    champion = mlflow.MlflowClient(mlflow_store).get_model_version_by_alias("utkface-mtl", "champion")
    assert champion.run_id == parent.iloc[0]["tags.best_run_id"]


def test_mlflow_run_trains_and_logs_one_model(utkface_dir, tmp_path, mlflow_store):
    _mlflow_run(["-e", "train", "--experiment-name", "smoke", "-P", f"data={utkface_dir}",
                 "-P", "config=experiments/smoke.yaml", "-P", "seed=3"], mlflow_store, tmp_path)
    runs = mlflow.search_runs(experiment_names=["smoke"])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.seed"] == "3" and run["params.data.subset"] == "1000"
    assert run["metrics.test_age_mae"] < run["metrics.test_baseline_age_mae"]
    assert "model/MLmodel" in {a.path for a in mlflow.MlflowClient(mlflow_store).list_artifacts(run["run_id"], "model")}
