"""Study figures on the study's MLflow run (Optuna's matplotlib visualisations)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import optuna  # noqa: E402
from optuna.visualization import matplotlib as ovm  # noqa: E402


def _save(client: mlflow.MlflowClient, run_id: str, name: str, make) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = make()
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError):  # too few trials for this plot
        return
    fig = result.figure if hasattr(result, "figure") else (result.flat[0].figure if hasattr(result, "flat") else result)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        client.log_artifact(run_id, str(path), "study")
    plt.close("all")


def log_study_plots(study: optuna.Study, run_id: str, client: mlflow.MlflowClient, *, multi_objective: bool) -> None:
    """Optimisation history, parameter importances, parallel coordinates, and the Pareto front."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return
    if multi_objective:
        _save(client, run_id, "pareto_front", lambda: ovm.plot_pareto_front(
            study, target_names=["val age MAE", "val gender error"]))
        target = {"target": lambda t: t.values[0] + 20 * t.values[1], "target_name": "composite objective"}
    else:
        target = {}
    _save(client, run_id, "optimization_history", lambda: ovm.plot_optimization_history(study, **target))
    _save(client, run_id, "parallel_coordinate", lambda: ovm.plot_parallel_coordinate(study, **target))
    if len(complete) >= 2:
        _save(client, run_id, "param_importances", lambda: ovm.plot_param_importances(study, **target))
    _save(client, run_id, "intermediate_values", lambda: ovm.plot_intermediate_values(study))
