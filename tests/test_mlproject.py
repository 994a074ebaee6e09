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
    assert {"main", "train", "tune", "promote", "eda", "ethics", "mitigation", "model_card"} <= set(project["entry_points"])
    main = project["entry_points"]["main"]["parameters"]
    assert {"data", "config", "seed"} <= set(main)
    assert all("type" in spec for spec in main.values())


def test_mlflow_run_trains_and_logs_one_model(utkface_dir, tmp_path, mlflow_store):
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")}
    env = {**inherited, "MLFLOW_TRACKING_URI": mlflow_store,
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    subprocess.run([sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local",
                    "--experiment-name", "smoke", "-P", f"data={utkface_dir}", "-P", "config=experiments/smoke.yaml",
                    "-P", "seed=3"], env=env, check=True, cwd=tmp_path, timeout=900)
    runs = mlflow.search_runs(experiment_names=["smoke"])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.seed"] == "3" and run["params.data.subset"] == "1000"
    assert run["metrics.test_age_mae"] < run["metrics.test_baseline_age_mae"]
    assert "model/MLmodel" in {a.path for a in mlflow.MlflowClient(mlflow_store).list_artifacts(run["run_id"], "model")}
