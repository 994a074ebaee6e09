"""What a run logs to MLflow besides per-epoch metrics: tables, plots, summary and the model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from mtl import plots
from mtl.pyfunc import calibrate_interval, interval_bounds, log_pyfunc, save_model_dir
from mtl.split import manifest

if TYPE_CHECKING:
    from mtl.config import RunConfig
    from mtl.data import PreparedData
    from mtl.train import TrainResult


def log_table(frame: pd.DataFrame, artifact_file: str, index: bool = False) -> None:
    """Log a DataFrame as a CSV artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=index)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_figure(fig, artifact_file: str) -> None:
    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_data(data: "PreparedData") -> None:
    """Data-quality table and counts, split manifest, cache location."""
    log_table(data.quality, "data/data_quality.csv")
    log_table(manifest(data.frame), "data/split_manifest.csv")
    mlflow.log_metrics({k: float(v) for k, v in data.summary.items()})
    counts = data.quality["problem"].value_counts().to_dict() if len(data.quality) else {}
    lines = ["# Data quality", "", f"Files read: {data.summary['dq_files']}; usable: {data.summary['dq_usable']}.", "",
             "| problem | files | action |", "|---|---|---|"]
    from mtl.quality import ACTIONS

    for kind, action in ACTIONS.items():
        lines.append(f"| {kind} | {counts.get(kind, 0)} | {action} |")
    lines += ["", f"Split sizes: train {data.summary['n_train']}, val {data.summary['n_val']}, "
              f"test {data.summary['n_test']}.", "", "The full list is `data/data_quality.csv`."]
    mlflow.log_text("\n".join(lines) + "\n", "data/data_quality.md")


def log_results(cfg: "RunConfig", result: "TrainResult") -> None:
    """History, plots, test predictions and metrics, the summary, and the pyfunc model."""
    history, preds = result.history, result.test_predictions
    log_table(history, "training/history.csv")
    log_figure(plots.learning_curves(history), "plots/learning_curves.png")
    log_figure(plots.gender_confusion(preds["gender"], preds["female_probability"]), "plots/gender_confusion.png")
    log_figure(plots.age_scatter(preds["age"], preds["pred_age"]), "plots/age_pred_vs_true.png")
    val_preds = _val_predictions(cfg, result)
    interval = calibrate_interval(val_preds["age"], val_preds["pred_age"]) if len(val_preds) else {}
    if interval:
        low, high = interval_bounds(preds["pred_age"], interval)
        result.metrics["test_age_interval_coverage"] = float(((preds["age"] >= low) & (preds["age"] <= high)).mean())
        result.metrics["test_age_interval_width"] = float((high - low).mean())
    log_table(preds[["file", "age", "gender", "race", "pred_age", "female_probability"]], "evaluation/test_predictions.csv")
    mlflow.log_metrics(result.metrics)
    from mtl.analysis import log_analysis

    result.extra["analysis"] = log_analysis(cfg, result)
    mlflow.log_text(summary_markdown(cfg, result), "summary.md")
    if cfg.train.log_model:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = save_model_dir(result.model.cpu(), cfg.model, image_size=cfg.data.image_size,
                                       crop=cfg.data.crop,
                                       interval=interval, target=Path(tmp) / "model_dir")
            example = np.asarray(result.data.images[int(preds["cache_index"].iloc[0])]) if len(preds) else None
            info = log_pyfunc(model_dir, example_image=example, registered_model_name=cfg.train.registered_model_name)
            result.extra["model_uri"] = info.model_uri


def _val_predictions(cfg: "RunConfig", result: "TrainResult") -> pd.DataFrame:
    from mtl.evaluate import predict_frame

    val = result.data.split("val")
    device = next(result.model.parameters()).device
    return predict_frame(result.model, result.data.images, val, device=device, channels_last=cfg.train.channels_last)


def summary_markdown(cfg: "RunConfig", result: "TrainResult") -> str:
    """A short human summary of the run (also logged as ``summary.md``)."""
    m = result.metrics
    rows = [
        ("age MAE (years)", f"{m['test_age_mae']:.3f}", f"{m['test_baseline_age_mae']:.3f}"),
        ("age RMSE", f"{m['test_age_rmse']:.3f}", ""),
        ("age CS@5", f"{m['test_age_cs5']:.3f}", ""),
        ("age MAE, ages 21-60", f"{m.get('test_age_mae_21_60', float('nan')):.3f}", ""),
        ("gender accuracy", f"{m['test_gender_accuracy']:.4f}", f"{m['test_baseline_gender_accuracy']:.4f}"),
        ("gender F1 (female)", f"{m['test_gender_f1']:.4f}", ""),
        ("gender ROC AUC", f"{m.get('test_gender_roc_auc', float('nan')):.4f}", ""),
    ]
    if "test_age_interval_coverage" in m:
        rows.append(("80% age interval coverage", f"{m['test_age_interval_coverage']:.3f}", "0.800 (target)"))
    bands = [(k.removeprefix("test_age_mae_band_"), v) for k, v in m.items() if k.startswith("test_age_mae_band_")]
    lines = [
        f"# Run summary: {cfg.model.backbone}, {cfg.model.age_formulation} age, {cfg.loss.weighting} weighting",
        "",
        f"Weights: {result.weights.source} {result.weights.location}. Images {cfg.data.image_size}px. "
        f"Best epoch {result.best_epoch} of {len(result.history)}; {m['train_minutes']:.1f} min of training.",
        f"Test split: {len(result.test_predictions)} images (seed {cfg.seed}).",
        "",
        "| metric | model | trivial baseline |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Age MAE per band: " + ", ".join(f"{b.replace('plus', '+')}: {v:.2f}" for b, v in bands),
        "",
    ]
    extra = result.extra.get("analysis", {})
    if extra:
        lines += ["## Fairness (test split; gaps = largest minus smallest group, 95% bootstrap CI of that pair)", ""]
        for key, label in (("fair_age_mae_gap_race", "age MAE gap across race"),
                           ("fair_gender_acc_gap_race", "gender accuracy gap across race"),
                           ("fair_age_mae_gap_age_band", "age MAE gap across age bands"),
                           ("fair_gender_acc_gap_age_band", "gender accuracy gap across age bands")):
            if key in extra:
                lines.append(f"- {label}: {extra[key]:.3f} [{extra.get(key + '_ci_low', float('nan')):.3f}, "
                             f"{extra.get(key + '_ci_high', float('nan')):.3f}]")
        if "lime_gender_deletion_ratio" in extra:
            lines.append(f"- LIME deletion test (output change, top vs random segments): gender "
                         f"{extra['lime_gender_deletion_ratio']:.2f}x, age {extra['lime_age_deletion_ratio']:.2f}x; "
                         f"{extra['lime_seconds_per_explanation']:.2f} s per explanation")
        lines += ["", "Tables and figures: `fairness/`, `samples/`, `lime/`.", ""]
    return "\n".join(lines)
