"""Evaluation metrics for age and gender, and the one composite objective used everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mtl.labels import AGE_BAND_NAMES, age_band

GENDER_ERROR_WEIGHT = 20.0


def composite_objective(age_mae: float, gender_accuracy: float) -> float:
    """Lower is better: ``age_mae + 20 * (1 - gender_accuracy)``.

    One point of gender error costs 0.2 years of MAE. Used for early stopping, for the tuning
    objective and to pick champions, always on the same split.
    """
    return float(age_mae + GENDER_ERROR_WEIGHT * (1.0 - gender_accuracy))


def age_metrics(true_age: np.ndarray, pred_age: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, CS@5, MAE on ages 21-60, and MAE per age band (``age_mae_band_20-29``)."""
    true_age, pred_age = np.asarray(true_age, float), np.asarray(pred_age, float)
    err = np.abs(pred_age - true_age)
    out = {
        "age_mae": float(err.mean()),
        "age_rmse": float(np.sqrt(((pred_age - true_age) ** 2).mean())),
        "age_cs5": float((err <= 5).mean()),
    }
    mid = (true_age >= 21) & (true_age <= 60)
    if mid.any():
        out["age_mae_21_60"] = float(err[mid].mean())
    bands = np.array([age_band(a) for a in true_age])
    for name in AGE_BAND_NAMES:
        mask = bands == name
        if mask.any():
            out[f"age_mae_band_{name.replace('+', 'plus')}"] = float(err[mask].mean())
    return out


def gender_metrics(true_gender: np.ndarray, female_probability: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 (female = positive) and ROC AUC of the gender head."""
    true_gender = np.asarray(true_gender).astype(int)
    prob = np.asarray(female_probability, float)
    pred = (prob >= 0.5).astype(int)
    out = {
        "gender_accuracy": float(accuracy_score(true_gender, pred)),
        "gender_f1": float(f1_score(true_gender, pred, zero_division=0)),
    }
    if len(np.unique(true_gender)) == 2:
        out["gender_roc_auc"] = float(roc_auc_score(true_gender, prob))
    return out


def evaluate_predictions(frame: pd.DataFrame) -> dict[str, float]:
    """All metrics from a frame with columns age, gender, pred_age, female_probability."""
    out = age_metrics(frame["age"].to_numpy(), frame["pred_age"].to_numpy())
    out.update(gender_metrics(frame["gender"].to_numpy(), frame["female_probability"].to_numpy()))
    out["objective"] = composite_objective(out["age_mae"], out["gender_accuracy"])
    return out


def baseline_metrics(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    """The trivial baseline: predict the training mean age and the majority gender for everyone."""
    mean_age = float(train["age"].mean())
    majority = int(train["gender"].mean() >= 0.5)
    return {
        "baseline_age_mae": float(np.abs(test["age"] - mean_age).mean()),
        "baseline_gender_accuracy": float((test["gender"] == majority).mean()),
    }
