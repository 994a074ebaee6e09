"""Read what a finished training run logged (metrics, params, tables) back from MLflow."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd


@dataclass
class RunData:
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    predictions: pd.DataFrame
    gaps: pd.DataFrame
    by_group: dict[str, pd.DataFrame]
    overrepresentation: pd.DataFrame
    lime: pd.DataFrame | None


def _csv(client: mlflow.MlflowClient, run_id: str, path: str, **kwargs) -> pd.DataFrame | None:
    try:
        return pd.read_csv(client.download_artifacts(run_id, path), **kwargs)
    except Exception:  # an artifact a run did not log
        return None


def load_run(run_id: str, client: mlflow.MlflowClient | None = None) -> RunData:
    """Everything the ethics report and the model card need from one run; missing tables are an error."""
    client = client or mlflow.MlflowClient()
    run = client.get_run(run_id)
    predictions = _csv(client, run_id, "evaluation/test_predictions.csv")
    gaps = _csv(client, run_id, "fairness/gaps.csv")
    if predictions is None or gaps is None:
        raise FileNotFoundError(f"run {run_id} has no evaluation/test_predictions.csv or fairness/gaps.csv; "
                                "is it a finished utkface-mtl training run?")
    by_group = {f: _csv(client, run_id, f"fairness/by_{f}.csv", index_col=0) for f in ("race", "gender", "age_band",
                                                                                       "race_x_gender")}
    return RunData(run_id, run.data.params, run.data.metrics, predictions, gaps,
                   {k: v for k, v in by_group.items() if v is not None},
                   _csv(client, run_id, "fairness/worst_overrepresentation.csv"), _csv(client, run_id, "lime/panel.csv"))
