"""Per-run analysis logged to MLflow: fairness tables and figures, best/worst galleries, LIME panel."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from mtl.explain import choose_panel, deletion_summary, explain_panel, explanations_json, overlay
from mtl.fairness import evaluate_fairness, worst_group_overrepresentation
from mtl.images import decode_bytes
from mtl.labels import GENDERS, RACES
from mtl.pyfunc import Predictor
from mtl.sources import open_source
from mtl.tracking import log_figure, log_table

if TYPE_CHECKING:
    from mtl.config import RunConfig
    from mtl.train import TrainResult


def group_bars(table: pd.DataFrame, metric: str, title: str):
    """Bar chart of one metric by group with its bootstrap 95% interval."""
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(table) + 2), 3.2))
    values = table[metric]
    err = None
    if f"{metric}_ci_low" in table:
        err = np.vstack([values - table[f"{metric}_ci_low"], table[f"{metric}_ci_high"] - values]).clip(min=0)
    ax.bar([str(i) for i in table.index], values, yerr=err, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def gallery(rows: pd.DataFrame, images: np.ndarray, title: str):
    """A grid of cached test images with labels and predictions."""
    n = len(rows)
    cols = min(6, max(n, 1))
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(1.8 * cols, 2.1 * -(-n // cols)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, rows.iterrows()):
        ax.imshow(np.asarray(images[int(row["cache_index"])]))
        sex = GENDERS[int(row["gender"])][0].upper()
        pred_sex = "F" if row["female_probability"] >= 0.5 else "M"
        ax.set_title(f"{int(row['age'])}{sex} {RACES[int(row['race'])]}\n-> {row['pred_age']:.0f}{pred_sex} "
                     f"p(F)={row['female_probability']:.2f}", fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def log_fairness(preds: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, float]:
    """Per-group tables, gap table, bar charts, worst-5% over-representation; returns fair_* metrics."""
    result = evaluate_fairness(preds, n_boot=n_boot, seed=seed)
    for feature, table in result.by_group.items():
        log_table(table, f"fairness/by_{feature}.csv", index=True)
    log_table(result.gaps, "fairness/gaps.csv")
    for feature in ("race", "gender", "age_band", "race_x_gender"):
        table = result.by_group[feature]
        log_figure(group_bars(table, "age_mae", f"test age MAE by {feature} (95% bootstrap CI)"),
                 f"fairness/age_mae_by_{feature}.png")
        log_figure(group_bars(table, "gender_accuracy", f"test gender accuracy by {feature} (95% CI)"),
                 f"fairness/gender_accuracy_by_{feature}.png")
    over = worst_group_overrepresentation(preds)
    log_table(over, "fairness/worst_overrepresentation.csv")
    mlflow.log_metrics(result.summary)
    return result.summary


def log_galleries(preds: pd.DataFrame, images: np.ndarray, size: int) -> None:
    err = (preds["pred_age"] - preds["age"]).abs()
    ranked = preds.assign(abs_err=err)
    log_figure(gallery(ranked.nlargest(size, "abs_err"), images, "worst age predictions (test)"), "samples/worst_age.png")
    log_figure(gallery(ranked.nsmallest(size, "abs_err"), images, "best age predictions (test)"), "samples/best_age.png")
    confidence = (preds["female_probability"] - 0.5).abs()
    wrong = preds[(preds["female_probability"] >= 0.5).astype(int) != preds["gender"]]
    right = preds[(preds["female_probability"] >= 0.5).astype(int) == preds["gender"]]
    log_figure(gallery(wrong.assign(c=confidence).nlargest(size, "c"), images, "most confident gender errors (test)"),
             "samples/worst_gender.png")
    log_figure(gallery(right.assign(c=confidence).nlargest(size, "c"), images, "most confident correct gender (test)"),
             "samples/best_gender.png")


def log_lime(cfg: "RunConfig", predictor: Predictor, preds: pd.DataFrame, *, folder: str = "lime") -> dict[str, float]:
    """Explain the configured panel on the original images; log overlays, JSON weights and deletion
    metrics (named ``{folder}_...``) under ``folder/`` of the active run."""
    r = cfg.report
    if not (r.lime_worst or r.lime_best or r.lime_gender_errors or r.lime_per_group):
        return {}
    panel = choose_panel(preds, n_worst=r.lime_worst, n_best=r.lime_best, n_gender_errors=r.lime_gender_errors,
                         per_group=r.lime_per_group, seed=cfg.seed)
    source = open_source(cfg.data.path)
    wanted = set(panel["file"])
    originals = {name: decode_bytes(data) for name, data in source.iter_bytes(sorted(wanted))}
    images = [originals[f] for f in panel["file"]]
    explanations, table = explain_panel(predictor, panel, images, num_samples=r.lime_samples, seed=cfg.seed)
    for i, expl in enumerate(explanations):
        image = images[i // 2]
        log_figure(overlay(image, expl), f"{folder}/{i // 2:02d}_{expl.task}_{Path(expl.file).stem[:40]}.png")
    mlflow.log_text(explanations_json(explanations), f"{folder}/segment_weights.json")
    log_table(table, f"{folder}/panel.csv")
    summary = {folder + key.removeprefix("lime"): value for key, value in deletion_summary(table).items()}
    mlflow.log_metrics(summary)
    return summary


FULL_PANEL = {"report.lime_worst": 2, "report.lime_best": 2, "report.lime_gender_errors": 2, "report.lime_per_group": 1}


def log_full_lime(run_id: str, *, data_path: str | None = None) -> dict[str, float]:
    """The champion's full LIME panel (worst and best ages, gender errors, one face per race x gender
    group) from a finished run's logged model and test predictions, logged to ``lime_full/`` of that run."""
    from mtl.config import from_flat

    client = mlflow.MlflowClient()
    finished = client.get_run(run_id)
    cfg = from_flat({**finished.data.params, **FULL_PANEL})
    if data_path:
        cfg.data.path = data_path
    preds = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id,
                                                            artifact_path="evaluation/test_predictions.csv"))
    predictor = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").unwrap_python_model().predictor
    with mlflow.start_run(run_id=run_id):
        summary = log_lime(cfg, predictor, preds, folder="lime_full")
    # reopening the run moved its end time; restore it so the run still shows its training duration
    client.set_terminated(run_id, finished.info.status, end_time=finished.info.end_time)
    return summary


def log_analysis(cfg: "RunConfig", result: "TrainResult") -> dict[str, float]:
    """Everything a user needs to see where the model fails and for whom, for one trained model."""
    preds = result.test_predictions
    metrics = log_fairness(preds, n_boot=cfg.report.fairness_boot, seed=cfg.seed)
    log_galleries(preds, result.data.images, cfg.report.gallery_size)
    predictor = Predictor(result.model.cpu(), image_size=cfg.data.image_size, crop=cfg.data.crop)
    metrics.update(log_lime(cfg, predictor, preds))
    return metrics
