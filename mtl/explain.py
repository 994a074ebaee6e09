"""LIME explanations of the gender and age predictions, checked with a deletion test.

Perturbed images go through the model in batches. Segments come from SLIC superpixels on the
image at explanation resolution; masked segments are filled with the image's mean colour.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lime import lime_image
from skimage.segmentation import mark_boundaries, slic

from mtl.pyfunc import Predictor


@dataclass
class Explanation:
    """One explained image: its segments, per-task segment weights and the deletion test."""

    file: str
    task: str  # "gender" | "age"
    prediction: float
    segments: np.ndarray
    weights: dict[int, float]  # segment -> LIME weight (towards female probability / older age)
    seconds: float
    deletion: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"file": self.file, "task": self.task, "prediction": self.prediction, "seconds": self.seconds,
                "segment_weights": {str(k): v for k, v in sorted(self.weights.items())}, "deletion": self.deletion}


class ModelOutputs:
    """Batched model call in the shape LIME expects: (N, H, W, 3) uint8 -> (N, k) outputs."""

    def __init__(self, predictor: Predictor, task: str):
        if task not in ("gender", "age"):
            raise ValueError(f"task must be 'gender' or 'age', got {task!r}")
        self.predictor, self.task = predictor, task

    def __call__(self, images: np.ndarray) -> np.ndarray:
        frame = self.predictor.predict_arrays([np.asarray(img, dtype=np.uint8) for img in images])
        if self.task == "gender":
            female = frame["female_probability"].to_numpy()
            return np.stack([1 - female, female], axis=1)
        return frame["age"].to_numpy()[:, None]


def segment(image: np.ndarray, n_segments: int = 40) -> np.ndarray:
    """SLIC superpixels (deterministic for a given image)."""
    return slic(image, n_segments=n_segments, compactness=10, start_label=0)


def explain(predictor: Predictor, image: np.ndarray, *, task: str, file: str = "", num_samples: int = 500,
            n_segments: int = 40, seed: int = 0) -> Explanation:
    """LIME weights of every segment for the female probability (task "gender") or the age in years."""
    fn = ModelOutputs(predictor, task)
    label = 1 if task == "gender" else 0
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    start = time.perf_counter()
    result = explainer.explain_instance(
        image, fn, labels=(label,), top_labels=None, hide_color=None, num_samples=num_samples,
        batch_size=num_samples, segmentation_fn=lambda img: segment(img, n_segments), random_seed=seed)
    seconds = time.perf_counter() - start
    prediction = float(fn(image[None])[0, label])
    weights = {int(k): float(v) for k, v in result.local_exp[label]}
    return Explanation(file, task, prediction, result.segments, weights, seconds)


def deletion_test(predictor: Predictor, image: np.ndarray, expl: Explanation, *, k: int = 5, n_random: int = 10,
                  seed: int = 0) -> dict[str, float]:
    """Mask the k segments that LIME says push the prediction most, versus k random segments.

    Returns the mean absolute change of the output (female probability or age) for each, and
    their ratio: > 1 means the explanation found segments that matter more than chance.
    """
    fn = ModelOutputs(predictor, expl.task)
    label = 1 if expl.task == "gender" else 0
    fill = image.reshape(-1, 3).mean(0).astype(np.uint8)
    segments = expl.segments
    ids = np.unique(segments)
    k = min(k, len(ids))
    top = sorted(expl.weights, key=lambda s: -abs(expl.weights[s]))[:k]
    rng = np.random.default_rng(seed)
    masks = [top] + [list(rng.choice(ids, size=k, replace=False)) for _ in range(n_random)]
    batch = []
    for chosen in masks:
        masked = image.copy()
        masked[np.isin(segments, chosen)] = fill
        batch.append(masked)
    outputs = fn(np.stack(batch))[:, label]
    base = expl.prediction
    top_change = float(abs(outputs[0] - base))
    random_change = float(np.mean(np.abs(outputs[1:] - base)))
    return {"top_change": top_change, "random_change": random_change,
            "ratio": top_change / random_change if random_change > 0 else float("inf")}


def overlay(image: np.ndarray, expl: Explanation, *, top: int = 6):
    """Figure: the image, the segment weights as a heat map, and the top segments outlined."""
    import matplotlib.pyplot as plt

    heat = np.zeros(expl.segments.shape, dtype=float)
    for seg, w in expl.weights.items():
        heat[expl.segments == seg] = w
    limit = np.abs(heat).max() or 1.0
    top_ids = sorted(expl.weights, key=lambda s: -abs(expl.weights[s]))[:top]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    axes[0].imshow(image)
    axes[0].set_title("input")
    axes[1].imshow(image)
    axes[1].imshow(heat, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.55)
    towards = "female" if expl.task == "gender" else "older"
    axes[1].set_title(f"LIME weights (red: towards {towards})", fontsize=8)
    axes[2].imshow(mark_boundaries(image, np.where(np.isin(expl.segments, top_ids), expl.segments, -1) + 1))
    axes[2].set_title(f"top {len(top_ids)} segments", fontsize=8)
    for ax in axes:
        ax.axis("off")
    value = f"P(female)={expl.prediction:.2f}" if expl.task == "gender" else f"age {expl.prediction:.1f}"
    fig.suptitle(f"{expl.file} — {expl.task}: {value}", fontsize=8)
    fig.tight_layout()
    return fig


def choose_panel(preds: pd.DataFrame, *, n_worst: int = 2, n_best: int = 2, n_gender_errors: int = 2,
                 per_group: int = 1, seed: int = 0) -> pd.DataFrame:
    """A fixed, seeded panel: worst and best age predictions, gender errors, and samples per race x gender."""
    preds = preds.assign(abs_err=(preds["pred_age"] - preds["age"]).abs(),
                         gender_wrong=(preds["female_probability"] >= 0.5).astype(int) != preds["gender"])
    parts = [preds.nlargest(n_worst, "abs_err").assign(reason="worst age"),
             preds.nsmallest(n_best, "abs_err").assign(reason="best age")]
    wrong = preds[preds["gender_wrong"]]
    if len(wrong) and n_gender_errors:
        parts.append(wrong.sample(min(n_gender_errors, len(wrong)), random_state=seed).assign(reason="gender error"))
    if per_group:
        sampled = preds.groupby(["race", "gender"], group_keys=False).apply(
            lambda g: g.sample(min(per_group, len(g)), random_state=seed))
        parts.append(sampled.assign(reason="group sample"))
    panel = pd.concat(parts).drop_duplicates("file")
    return panel.reset_index(drop=True)


def explain_panel(predictor: Predictor, panel: pd.DataFrame, images: list[np.ndarray], *, num_samples: int = 500,
                  seed: int = 0) -> tuple[list[Explanation], pd.DataFrame]:
    """Explain both tasks for every panel image; returns explanations and a per-image table."""
    if len(panel) != len(images):
        raise ValueError(f"panel has {len(panel)} rows but {len(images)} images were given")
    explanations, rows = [], []
    for (_, row), image in zip(panel.iterrows(), images):
        for task in ("gender", "age"):
            expl = explain(predictor, image, task=task, file=row["file"], num_samples=num_samples, seed=seed)
            expl.deletion = deletion_test(predictor, image, expl, seed=seed)
            explanations.append(expl)
            rows.append({"file": row["file"], "reason": row.get("reason", ""), "task": task,
                         "prediction": expl.prediction, "seconds": expl.seconds,
                         **{f"deletion_{k}": v for k, v in expl.deletion.items()}})
    return explanations, pd.DataFrame(rows)


def deletion_summary(table: pd.DataFrame) -> dict[str, float]:
    """MLflow metrics: mean output change for top vs random segments, per task, and LIME seconds."""
    out = {}
    for task, group in table.groupby("task"):
        out[f"lime_{task}_deletion_top"] = float(group["deletion_top_change"].mean())
        out[f"lime_{task}_deletion_random"] = float(group["deletion_random_change"].mean())
        out[f"lime_{task}_deletion_ratio"] = float(group["deletion_top_change"].mean()
                                                   / max(group["deletion_random_change"].mean(), 1e-9))
    out["lime_seconds_per_explanation"] = float(table["seconds"].mean())
    return out


def explanations_json(explanations: list[Explanation]) -> str:
    return json.dumps([e.to_json() for e in explanations], indent=1)
