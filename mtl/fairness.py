"""Per-group metrics with fairlearn's MetricFrame: by race, gender, age band and race x gender.

Between-group differences and ratios carry bootstrap confidence intervals (MetricFrame's own
``n_boot``); headline figures become MLflow metrics named ``fair_*`` so runs sort on fairness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)
from sklearn.metrics import accuracy_score, mean_absolute_error

from mtl.labels import GENDERS, RACES, age_band

FEATURES = ("race", "gender", "age_band", "race_x_gender")
GENDER_METRICS = {"gender_accuracy": accuracy_score, "selection_rate": selection_rate,
                  "false_positive_rate": false_positive_rate, "false_negative_rate": false_negative_rate}
AGE_METRICS = {"age_mae": mean_absolute_error}
CI = [0.025, 0.975]
CONDITIONED_ON_GENDER = ("selection_rate", "false_positive_rate", "false_negative_rate")
LOWER_IS_BETTER = ("age_mae", "false_positive_rate", "false_negative_rate")


@dataclass
class FairnessResult:
    """``by_group``: one table per feature; ``gaps``: differences/ratios with CIs; ``summary``: fair_* metrics."""

    by_group: dict[str, pd.DataFrame] = field(default_factory=dict)
    gaps: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: dict[str, float] = field(default_factory=dict)


def sensitive_frame(preds: pd.DataFrame) -> pd.DataFrame:
    """Readable group columns for a predictions frame with integer ``race``/``gender`` labels."""
    race = preds["race"].map(dict(enumerate(RACES)))
    gender = preds["gender"].map(dict(enumerate(GENDERS)))
    return pd.DataFrame({"race": race, "gender": gender, "age_band": preds["age"].map(age_band),
                         "race_x_gender": race + " " + gender}, index=preds.index)


def _frames(preds: pd.DataFrame, feature: str, groups: pd.DataFrame,
            control: pd.Series | None = None) -> tuple[MetricFrame, MetricFrame]:
    pred_gender = (preds["female_probability"] >= 0.5).astype(int)
    kwargs = dict(sensitive_features=groups[feature], control_features=control)
    age = MetricFrame(metrics=AGE_METRICS, y_true=preds["age"], y_pred=preds["pred_age"], **kwargs)
    gender = MetricFrame(metrics=GENDER_METRICS, y_true=preds["gender"].astype(int), y_pred=pred_gender, **kwargs)
    return age, gender


def ratio_terms(preds: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each metric as sum(numerator) / sum(denominator) over a group's rows (for a fast bootstrap)."""
    y = preds["gender"].to_numpy().astype(int)
    p = (preds["female_probability"].to_numpy() >= 0.5).astype(int)
    ones = np.ones(len(preds))
    return {
        "age_mae": (np.abs(preds["pred_age"].to_numpy() - preds["age"].to_numpy()), ones),
        "gender_accuracy": ((p == y).astype(float), ones),
        "selection_rate": (p.astype(float), ones),
        "false_positive_rate": ((p * (1 - y)).astype(float), (1 - y).astype(float)),
        "false_negative_rate": (((1 - p) * y).astype(float), y.astype(float)),
    }


def bootstrap_draws(n_rows: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_rows) row indices drawn with replacement; reuse them to pair two models' bootstraps."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(n_boot, n_rows))


def group_replicates(preds: pd.DataFrame, feature_values: pd.Series, draws: np.ndarray) -> dict[str, pd.DataFrame]:
    """Every metric per group for each row-index draw: {metric: DataFrame (draws x groups)}."""
    codes, levels = pd.factorize(feature_values, sort=True)
    out = {}
    for metric, (num, den) in ratio_terms(preds).items():
        reps = np.empty((len(draws), len(levels)))
        for b, idx in enumerate(draws):
            top = np.bincount(codes[idx], weights=num[idx], minlength=len(levels))
            bottom = np.bincount(codes[idx], weights=den[idx], minlength=len(levels))
            with np.errstate(invalid="ignore", divide="ignore"):
                reps[b] = top / bottom
        out[metric] = pd.DataFrame(reps, columns=levels)
    return out


def _worst_best(series: pd.Series, metric: str) -> tuple[str, str]:
    series = series.dropna()
    return (series.idxmax(), series.idxmin()) if metric in LOWER_IS_BETTER else (series.idxmin(), series.idxmax())


def evaluate_fairness(preds: pd.DataFrame, *, n_boot: int = 200, seed: int = 0) -> FairnessResult:
    """Per-group metrics (MetricFrame), gaps with bootstrap CIs, parity figures for the gender head.

    ``preds`` needs columns age, gender, race, pred_age, female_probability (one row per test image).
    The gap of a metric is MetricFrame's ``difference()`` (largest minus smallest group value); its
    95% interval is the bootstrap interval of the difference between the two groups that define it
    (worst and best on the full split), so the interval is about a fixed, named pair of groups.
    """
    missing = {"age", "gender", "race", "pred_age", "female_probability"} - set(preds.columns)
    if missing:
        raise ValueError(f"predictions lack column(s) {sorted(missing)}")
    groups = sensitive_frame(preds)
    result = FairnessResult()
    gap_rows = []
    for feature in FEATURES:
        age_mf, gender_mf = _frames(preds, feature, groups)
        table = pd.concat([age_mf.by_group, gender_mf.by_group], axis=1)
        reps = group_replicates(preds, groups[feature], bootstrap_draws(len(preds), n_boot, seed)) if n_boot else {}
        for metric, rep in reps.items():
            table[f"{metric}_ci_low"] = rep.quantile(CI[0]).reindex(table.index)
            table[f"{metric}_ci_high"] = rep.quantile(CI[1]).reindex(table.index)
        table["n"] = groups[feature].value_counts().reindex(table.index)
        result.by_group[feature] = table
        diffs = {**age_mf.difference().to_dict(), **gender_mf.difference().to_dict()}
        ratios = {**age_mf.ratio().to_dict(), **gender_mf.ratio().to_dict()}
        for metric in diffs:
            if "gender" in feature and metric in CONDITIONED_ON_GENDER:
                continue  # within one gender these rates are 0 or undefined by construction
            worst, best = _worst_best(table[metric], metric)
            row = {"feature": feature, "metric": metric, "difference": float(diffs[metric]),
                   "ratio": float(ratios[metric]), "worst_group": worst, "best_group": best,
                   "worst_value": float(table.at[worst, metric]), "best_value": float(table.at[best, metric])}
            if metric in reps:
                pair = reps[metric][worst] - reps[metric][best]  # signed: > 0 when "worst" is worse
                pair = pair if metric in LOWER_IS_BETTER else -pair
                ratio = np.minimum(reps[metric][worst], reps[metric][best]) / np.maximum(reps[metric][worst],
                                                                                          reps[metric][best])
                row.update(difference_ci_low=float(pair.quantile(CI[0])), difference_ci_high=float(pair.quantile(CI[1])),
                           ratio_ci_low=float(ratio.quantile(CI[0])), ratio_ci_high=float(ratio.quantile(CI[1])))
            gap_rows.append(row)
    # race compared within age bands: the age mix differs by race, and age drives the error
    age_ctl, gender_ctl = _frames(preds, "race", groups, control=groups["age_band"])
    result.by_group["race_within_age_band"] = pd.concat([age_ctl.by_group, gender_ctl.by_group], axis=1)
    for mf in (age_ctl, gender_ctl):
        for metric, value in mf.difference().mean().items():
            gap_rows.append({"feature": "race within age band (mean over bands)", "metric": metric,
                             "difference": float(value), "ratio": float(mf.ratio().mean()[metric])})
    result.gaps = pd.DataFrame(gap_rows)
    pred_gender = (preds["female_probability"] >= 0.5).astype(int)
    for feature in ("race", "age_band"):
        result.summary[f"fair_gender_dp_diff_{feature}"] = float(demographic_parity_difference(
            preds["gender"].astype(int), pred_gender, sensitive_features=groups[feature]))
        result.summary[f"fair_gender_eo_diff_{feature}"] = float(equalized_odds_difference(
            preds["gender"].astype(int), pred_gender, sensitive_features=groups[feature]))
    for row in gap_rows:
        if row["feature"] not in FEATURES or row["metric"] not in ("age_mae", "gender_accuracy"):
            continue
        key = f"fair_{'age_mae' if row['metric'] == 'age_mae' else 'gender_acc'}_%s_{row['feature']}"
        result.summary[key % "gap"] = row["difference"]
        result.summary[key % "ratio"] = row["ratio"]
        if "difference_ci_low" in row:
            result.summary[key % "gap" + "_ci_low"] = row["difference_ci_low"]
            result.summary[key % "gap" + "_ci_high"] = row["difference_ci_high"]
    control = result.gaps[result.gaps["feature"].str.startswith("race within")].set_index("metric")["difference"]
    result.summary["fair_age_mae_gap_race_within_age_band"] = float(control["age_mae"])
    result.summary["fair_gender_acc_gap_race_within_age_band"] = float(control["gender_accuracy"])
    return result


def worst_group_overrepresentation(preds: pd.DataFrame, *, share: float = 0.05) -> pd.DataFrame:
    """Which groups are over-represented among the worst ``share`` of age errors and among gender
    errors: ratio of a group's share of those samples to its share of the whole split."""
    groups = sensitive_frame(preds)
    err = (preds["pred_age"] - preds["age"]).abs()
    worst_age = err >= err.quantile(1 - share)
    wrong_gender = (preds["female_probability"] >= 0.5).astype(int) != preds["gender"].astype(int)
    rows = []
    for feature in ("race", "gender", "age_band"):
        overall = groups[feature].value_counts(normalize=True)
        for label, mask in (("worst_age_errors", worst_age), ("gender_errors", wrong_gender)):
            if mask.sum() == 0:
                continue
            among = groups.loc[mask, feature].value_counts(normalize=True)
            for group, base in overall.items():
                rows.append({"feature": feature, "group": group, "set": label, "share_of_split": float(base),
                             "share_of_set": float(among.get(group, 0.0)),
                             "ratio": float(among.get(group, 0.0) / base) if base else np.nan,
                             "n_in_set": int((groups.loc[mask, feature] == group).sum())})
    return pd.DataFrame(rows).sort_values(["set", "ratio"], ascending=[True, False]).reset_index(drop=True)
