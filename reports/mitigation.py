"""Measure a mitigation: the targeted gap before and after (paired bootstrap CIs) and its cost.

    python -m reports.mitigation --baseline RUN_ID --mitigated RUN_ID [--feature race --metric gender_accuracy]

Both runs must be scored on the identical test split (same seed and split, or one split manifest).
"""

from __future__ import annotations

import argparse

import mlflow
import numpy as np
import pandas as pd

from mtl.fairness import LOWER_IS_BETTER, bootstrap_draws, group_replicates, sensitive_frame
from reports.run_data import load_run


def compare(before: pd.DataFrame, after: pd.DataFrame, *, feature: str, metric: str, n_boot: int = 500,
            seed: int = 0) -> dict[str, float | str]:
    """Gap (worst minus best group of the baseline, harmful direction positive) before and after, the
    change with a paired bootstrap 95% CI (the same resampled rows for both runs), and the change in
    the overall metric."""
    merged = before.merge(after[["file", "pred_age", "female_probability"]], on="file", suffixes=("", "_after"))
    if len(merged) != len(before) or len(merged) != len(after):
        raise ValueError(f"the runs were scored on different test sets ({len(before)} vs {len(after)} rows, "
                         f"{len(merged)} shared); pass the same split manifest to both")
    b = merged[["file", "age", "gender", "race", "pred_age", "female_probability"]]
    a = b.assign(pred_age=merged["pred_age_after"], female_probability=merged["female_probability_after"])
    groups = sensitive_frame(b)[feature]
    everyone = pd.Series("all", index=b.index)
    full, draws = np.arange(len(b))[None, :], bootstrap_draws(len(b), n_boot, seed)

    def values(frame, by, rows):
        return group_replicates(frame, by, rows)[metric]

    sign = 1 if metric in LOWER_IS_BETTER else -1
    base = values(b, groups, full).iloc[0]
    worst, best = (base * sign).idxmax(), (base * sign).idxmin()

    def gap(reps: pd.DataFrame) -> np.ndarray:
        return (sign * (reps[worst] - reps[best])).to_numpy()

    gaps_before, gaps_after = gap(values(b, groups, draws)), gap(values(a, groups, draws))
    overall_change = (values(a, everyone, draws) - values(b, everyone, draws))["all"].to_numpy()
    q = lambda x: (float(np.quantile(x, 0.025)), float(np.quantile(x, 0.975)))  # noqa: E731
    gap_before, gap_after = float(gap(values(b, groups, full))[0]), float(gap(values(a, groups, full))[0])
    return {
        "feature": feature, "metric": metric, "worst_group": str(worst), "best_group": str(best),
        "gap_before": gap_before, "gap_before_ci": q(gaps_before),
        "gap_after": gap_after, "gap_after_ci": q(gaps_after),
        "gap_change": gap_after - gap_before, "gap_change_ci": q(gaps_after - gaps_before),
        "overall_before": float(values(b, everyone, full)["all"].iloc[0]),
        "overall_after": float(values(a, everyone, full)["all"].iloc[0]),
        "overall_change_ci": q(overall_change),
    }


def markdown(result: dict, *, baseline: str, mitigated: str, description: str) -> str:
    r = result
    fmt = lambda ci: f"[{ci[0]:.4f}, {ci[1]:.4f}]"  # noqa: E731
    shrinks = r["gap_change_ci"][1] < 0
    return "\n".join([
        f"## Mitigation: {description}",
        "",
        f"Target: the {r['metric']} gap across {r['feature']} between {r['worst_group']} (worst in the baseline) "
        f"and {r['best_group']} (best), harmful direction positive. Baseline run `{baseline}`, mitigated run "
        f"`{mitigated}`, same test split; 95% intervals from a paired bootstrap of the test images.",
        "",
        "| | baseline | mitigated | change |",
        "|---|---|---|---|",
        f"| gap | {r['gap_before']:.4f} {fmt(r['gap_before_ci'])} | {r['gap_after']:.4f} {fmt(r['gap_after_ci'])} "
        f"| {r['gap_change']:+.4f} {fmt(r['gap_change_ci'])} |",
        f"| overall {r['metric']} | {r['overall_before']:.4f} | {r['overall_after']:.4f} | "
        f"{r['overall_after'] - r['overall_before']:+.4f} {fmt(r['overall_change_ci'])} |",
        "",
        ("The gap shrank: the whole interval of the change is below zero." if shrinks else
         "The interval of the change includes zero or is positive: no measurable reduction of this gap."),
        "",
    ])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m reports.mitigation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--mitigated", required=True)
    parser.add_argument("--feature", default="race")
    parser.add_argument("--metric", default="gender_accuracy")
    parser.add_argument("--n-boot", type=int, default=500)
    args = parser.parse_args(argv)
    client = mlflow.MlflowClient()
    before, after = load_run(args.baseline, client), load_run(args.mitigated, client)
    balance = after.params.get("train.balance", "?")
    result = compare(before.predictions, after.predictions, feature=args.feature, metric=args.metric,
                     n_boot=args.n_boot)
    text = markdown(result, baseline=args.baseline, mitigated=args.mitigated,
                    description=f"group-balanced sampling (train.balance={balance})")
    client.log_text(args.mitigated, text, "ethics/mitigation.md")
    print(text)
    return text


if __name__ == "__main__":
    main()
