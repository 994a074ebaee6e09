"""Figures logged with every run: learning curves, confusion matrix, predicted vs true age."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402


def learning_curves(history: pd.DataFrame):
    """Train/val loss, val age MAE and val gender accuracy per epoch."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(history["epoch"], history["train_loss"], label="train")
    axes[0].plot(history["epoch"], history["val_loss"], label="val")
    axes[0].set_title("total loss")
    axes[1].plot(history["epoch"], history["train_age_mae"], label="train")
    axes[1].plot(history["epoch"], history["val_age_mae"], label="val")
    axes[1].set_title("age MAE (years)")
    axes[2].plot(history["epoch"], history["train_gender_accuracy"], label="train")
    axes[2].plot(history["epoch"], history["val_gender_accuracy"], label="val")
    axes[2].set_title("gender accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gender_confusion(true_gender: np.ndarray, female_probability: np.ndarray):
    """Confusion matrix of the gender head (rows: true, columns: predicted)."""
    cm = confusion_matrix(np.asarray(true_gender).astype(int), (np.asarray(female_probability) >= 0.5).astype(int),
                          labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v}\n{v / max(cm[i].sum(), 1):.1%}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["male", "female"])
    ax.set_yticks([0, 1], ["male", "female"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("gender confusion (test)")
    fig.tight_layout()
    return fig


def age_scatter(true_age: np.ndarray, pred_age: np.ndarray):
    """Predicted vs true age with the identity line and the per-age mean prediction."""
    true_age, pred_age = np.asarray(true_age, float), np.asarray(pred_age, float)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(true_age, pred_age, s=4, alpha=0.3)
    top = max(true_age.max(), pred_age.max()) + 2
    ax.plot([0, top], [0, top], "k--", lw=1, label="ideal")
    frame = pd.DataFrame({"t": true_age, "p": pred_age}).groupby("t")["p"].mean()
    ax.plot(frame.index, frame.values, color="tab:red", lw=1.5, label="mean prediction")
    ax.set_xlabel("true age")
    ax.set_ylabel("predicted age")
    ax.set_title(f"age on test: MAE {np.abs(true_age - pred_age).mean():.2f}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
