"""EDA of a UTKFace folder or zip, logged as an MLflow run with a self-contained HTML report.

    python -m reports.eda --data ../shared/data/UTKFace      (MLproject entry point: eda)
"""

from __future__ import annotations

import argparse
import base64
import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import ndimage  # noqa: E402

from mtl.cache import load_decoded  # noqa: E402
from mtl.labels import AGE_BAND_NAMES, GENDERS, RACES, age_band  # noqa: E402
from mtl.quality import find_duplicates, quality_summary, quality_table, usable  # noqa: E402
from mtl.sources import open_source  # noqa: E402

EDA_SIZE = 64


def image_properties(images: np.ndarray) -> pd.DataFrame:
    """Brightness (mean luma), contrast (luma std) and blur (variance of the Laplacian) per image."""
    rows = []
    for start in range(0, len(images), 2048):
        chunk = np.asarray(images[start : start + 2048], dtype=np.float32)
        luma = chunk @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        lap = np.stack([ndimage.laplace(img) for img in luma])
        rows.append(pd.DataFrame({"brightness": luma.mean(axis=(1, 2)), "contrast": luma.std(axis=(1, 2)),
                                  "sharpness": lap.var(axis=(1, 2))}))
    return pd.concat(rows, ignore_index=True)


def dhash(images: np.ndarray) -> np.ndarray:
    """64-bit difference hash of each image (9x8 grey thumbnail, horizontal gradients)."""
    hashes = np.empty(len(images), dtype=np.uint64)
    weights = (1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)
    for i, img in enumerate(images):
        grey = np.asarray(img, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        small = grey.reshape(8, grey.shape[0] // 8, 8, grey.shape[1] // 8).mean(axis=(1, 3))
        small = np.concatenate([small, small[:, -1:]], axis=1)
        bits = (small[:, 1:] > small[:, :-1]).flatten().astype(np.uint64)
        hashes[i] = np.sum(bits * weights, dtype=np.uint64)
    return hashes


def near_duplicates(records: pd.DataFrame, images: np.ndarray) -> pd.DataFrame:
    """Files whose 64-bit dHash equals another file's while their pixels differ (re-encoded or
    slightly edited copies). Exact pixel duplicates are reported separately by the audit."""
    decoded = records[records["cache_index"] >= 0].copy()
    decoded["dhash"] = dhash(images)[decoded["cache_index"].to_numpy()]
    groups = decoded.groupby("dhash").filter(lambda g: g["pixel_hash"].nunique() > 1)
    groups = groups.assign(labels=groups["age"].astype(str) + "_" + groups["gender"].astype(str) + "_"
                           + groups["race"].astype(str))
    out = groups.groupby("dhash").agg(files=("file", lambda f: "; ".join(sorted(f))), n=("file", "size"),
                                      labels=("labels", lambda s: "; ".join(sorted(set(s)))))
    out["labels_disagree"] = out["labels"].str.contains(";")
    return out.reset_index(drop=True)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def distribution_figures(frame: pd.DataFrame) -> dict[str, object]:
    figs = {}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    axes[0].hist(frame["age"], bins=range(0, 118, 2), color="tab:blue")
    axes[0].set_title("age")
    frame["gender_name"].value_counts().plot.bar(ax=axes[1], color="tab:orange", title="gender")
    frame["race_name"].value_counts().plot.bar(ax=axes[2], color="tab:green", title="race")
    fig.tight_layout()
    figs["distributions"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    frame.boxplot(column="age", by="race_name", ax=axes[0])
    axes[0].set_title("age by race")
    axes[0].set_xlabel("")
    share = frame.groupby("age_band")["gender"].mean().reindex(AGE_BAND_NAMES)
    axes[1].bar(share.index, share.values, color="tab:purple")
    axes[1].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[1].set_title("share female by age band")
    fig.suptitle("")
    fig.tight_layout()
    figs["joint"] = fig
    fig, ax = plt.subplots(figsize=(8, 3.8))
    pd.crosstab(frame["age_band"], frame["race_name"]).reindex(AGE_BAND_NAMES).plot.bar(stacked=True, ax=ax)
    ax.set_title("images per age band and race")
    fig.tight_layout()
    figs["age_band_by_race"] = fig
    return figs


def property_figure(frame: pd.DataFrame):
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    for ax, column in zip(axes, ("brightness", "contrast", "sharpness")):
        frame.boxplot(column=column, by="race_name", ax=ax, showfliers=False)
        ax.set_title(f"{column} by race")
        ax.set_xlabel("")
    fig.suptitle("")
    fig.tight_layout()
    return fig


def sample_grid(frame: pd.DataFrame, images: np.ndarray, by: str, per_group: int = 6, seed: int = 0):
    groups = sorted(frame[by].unique(), key=str)
    fig, axes = plt.subplots(len(groups), per_group, figsize=(1.3 * per_group, 1.4 * len(groups)), squeeze=False)
    for r, group in enumerate(groups):
        rows = frame[frame[by] == group]
        picked = rows.sample(min(per_group, len(rows)), random_state=seed)
        for c in range(per_group):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(picked):
                row = picked.iloc[c]
                ax.imshow(np.asarray(images[int(row["cache_index"])]))
                ax.set_title(f"{row['age']} {row['gender_name'][0]}", fontsize=6)
        axes[r, 0].text(-0.1, 0.5, str(group), transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def findings(frame: pd.DataFrame, summary: dict, near: pd.DataFrame) -> list[str]:
    """Statements derived from the numbers: what is under-represented and what it implies."""
    n = len(frame)
    out = []
    race_share = frame["race_name"].value_counts(normalize=True)
    largest = race_share.index[0]
    for race, share in race_share.items():
        if share < 0.5 / len(race_share):
            out.append(f"{race} faces are {share:.1%} of usable images ({int(share * n)}), under half an even "
                       f"share; expect wider error bars and possibly larger errors for them.")
    out.append(f"{largest} faces dominate ({race_share[largest]:.1%}); aggregate metrics mostly describe them.")
    band_share = frame["age_band"].value_counts(normalize=True).reindex(AGE_BAND_NAMES).fillna(0)
    for band, share in band_share.items():
        if share < 0.05:
            out.append(f"Ages {band} are only {share:.1%} of images; age errors there rest on little data.")
    female_by_band = frame.groupby("age_band")["gender"].mean().reindex(AGE_BAND_NAMES)
    skewed = female_by_band[(female_by_band - 0.5).abs() > 0.1]
    for band, share in skewed.items():
        out.append(f"In ages {band} the images are {share:.0%} female: a model can exploit age to guess "
                   "gender there, and the per-band gender error should be read with that in mind.")
    young = frame[frame["age"] <= 9]
    if len(young):
        out.append(f"Children 0-9 are {len(young) / n:.1%} of images; gender is hard to see at these ages, "
                   "so gender accuracy should be reported separately for them.")
    med = frame.groupby("race_name")["age"].median()
    out.append("Median age differs by race (" + ", ".join(f"{r} {m:.0f}" for r, m in med.items()) + "): compare "
               "race groups within age bands, since age error grows with age.")
    out.append(f"Data quality: {summary['dq_bad_name']} unparsable names, {summary['dq_unreadable']} unreadable "
               f"files, {summary['dq_duplicate']} files in agreeing exact-duplicate groups, "
               f"{summary['dq_conflicting_duplicate']} in groups whose labels disagree (dropped: the same face "
               f"cannot have two ages), and {int(near['n'].sum()) if len(near) else 0} near-duplicates in "
               f"{len(near)} groups ({int(near['labels_disagree'].sum()) if len(near) else 0} with disagreeing labels).")
    gray = frame["grayscale"].mean()
    out.append(f"{gray:.1%} of images are grayscale; colour statistics by group are affected by that share.")
    return out


def build_report(data_path: str, cache_dir: str, workers: int = 2) -> tuple[str, dict, dict[str, pd.DataFrame]]:
    """Compute everything; return (HTML report, metrics, tables)."""
    source = open_source(data_path)
    decoded = load_decoded(source, EDA_SIZE, cache_dir, workers=workers)
    records = find_duplicates(decoded.records)
    summary = quality_summary(records)
    frame = usable(records)
    frame = frame.assign(race_name=frame["race"].map(dict(enumerate(RACES))),
                         gender_name=frame["gender"].map(dict(enumerate(GENDERS))),
                         age_band=frame["age"].map(age_band))
    props = image_properties(decoded.images[frame["cache_index"].to_numpy()])
    frame = pd.concat([frame.reset_index(drop=True), props], axis=1)
    near = near_duplicates(records, decoded.images)
    figures = distribution_figures(frame)
    figures["properties"] = property_figure(frame)
    figures["samples_by_race"] = sample_grid(frame, decoded.images, "race_name")
    figures["samples_by_age_band"] = sample_grid(frame, decoded.images, "age_band")
    by_group = frame.groupby("race_name").agg(n=("file", "size"), median_age=("age", "median"),
                                             share_female=("gender", "mean"), grayscale=("grayscale", "mean"),
                                             brightness=("brightness", "mean"), contrast=("contrast", "mean"),
                                             sharpness=("sharpness", "median"))
    tables = {"counts_by_race": by_group, "age_band_by_race": pd.crosstab(frame["age_band"], frame["race_name"]),
              "data_quality": quality_table(records), "near_duplicates": near}
    words = findings(frame, summary, near)
    html = ["<html><head><meta charset='utf-8'><title>UTKFace EDA</title><style>body{font-family:sans-serif;"
            "max-width:1100px;margin:auto} table{border-collapse:collapse;font-size:12px} td,th{border:1px solid"
            " #ccc;padding:2px 6px}</style></head><body>",
            f"<h1>UTKFace EDA</h1><p>{data_path}: {summary['dq_files']} files, {len(frame)} usable.</p>",
            "<h2>Findings</h2><ul>" + "".join(f"<li>{w}</li>" for w in words) + "</ul>",
            "<h2>Counts by race</h2>" + by_group.round(3).to_html(),
            "<h2>Images per age band and race</h2>" + tables["age_band_by_race"].to_html()]
    for name, fig in figures.items():
        html.append(f"<h2>{name.replace('_', ' ')}</h2><img src='data:image/png;base64,{_png(fig)}'/>")
    html.append("<h2>Data quality (flagged files)</h2>" + tables["data_quality"].head(200).to_html(index=False))
    html.append("<h2>Near duplicates</h2>" + near.head(100).to_html(index=False) + "</body></html>")
    metrics = {**{k: float(v) for k, v in summary.items()}, "eda_near_duplicate_groups": float(len(near)),
               "eda_grayscale_share": float(frame["grayscale"].mean()), "eda_usable": float(len(frame))}
    for race, share in frame["race_name"].value_counts(normalize=True).items():
        metrics[f"eda_share_race_{race}"] = float(share)
    return "\n".join(html), metrics, tables | {"findings": pd.DataFrame({"finding": words})}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m reports.eda", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="UTKFace folder or the Kaggle zip")
    parser.add_argument("--cache-dir", default="~/.cache/utkface-mtl")
    parser.add_argument("--experiment", default="utkface-mtl-eda")
    args = parser.parse_args(argv)
    html, metrics, tables = build_report(args.data, args.cache_dir)
    import os

    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="eda") as run:
        mlflow.log_param("data", args.data)
        mlflow.log_metrics(metrics)
        mlflow.log_text(html, "eda/report.html")
        with tempfile.TemporaryDirectory() as tmp:
            for name, table in tables.items():
                path = Path(tmp) / f"{name}.csv"
                table.to_csv(path)
                mlflow.log_artifact(str(path), "eda")
        print(f"EDA run {run.info.run_id}: eda/report.html")
        return run.info.run_id


if __name__ == "__main__":
    main()
