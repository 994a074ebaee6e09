"""Ethics report generated from a run's measured numbers, with the written discussion around them.

    python -m reports.ethics --run-id RUN_ID [--mitigated-run RUN_ID]

Logs ``ethics/ethics_report.md`` to the run (and prints it).
"""

from __future__ import annotations

import argparse

import mlflow
import pandas as pd

from reports.run_data import RunData, load_run

DISCUSSION = """
## Where such a model may and may not be used

*Could be used, with care:* aggregate, anonymous statistics where individual errors average out and
nobody is affected by one prediction (for example, estimating the age mix of an audience in a study
with consent), research on the models themselves, and as a teaching example of multi-task learning and
of fairness auditing.

*Should not be used:* any decision about an individual: age verification for alcohol, gambling, adult
content or social media; immigration, asylum or criminal-justice age assessment; hiring, credit or
insurance; medical decisions; surveillance or tracking of people in public spaces; and anything that
assigns a gender to a person. The errors measured here (several years of age on average, larger for
older people and for some groups, and a gender head that is wrong for about one child in three) would
translate directly into wrongful denials or wrongful suspicion, concentrated on the groups the tables
above identify.

## Negative feedback loops

If predictions steer who is shown a service, checked, or recorded, the groups the model serves worst
are measured worst again: a retail system that asks people it judges "young" for identification will
ask some groups more often, its logs will then over-record those groups, and a model retrained on those
logs inherits and strengthens the skew. Under-represented groups (see the EDA) get fewer corrections,
so their error persists. Any deployment must monitor per-group error on freshly labelled data that the
model's own decisions did not select.

## Validity of the labels

- **Age** in UTKFace is an annotation, not a verified birth date: some labels were estimated by
  annotators or by a model and then checked by people (the dataset's authors say so). The model learns
  *apparent* age as judged by those annotators, including their biases (for example, judging some
  groups older or younger), and the test MAE measures agreement with those annotations, not with real age.
- **Gender** is recorded as a binary 0/1 label assigned from appearance. It does not represent gender
  identity, has no category for non-binary people, and its "accuracy" is agreement with the annotator's
  perception. Predicting it for a person can misgender them; the output must never be treated as a fact
  about anyone.
- **Race** uses five coarse categories (White, Black, Asian, Indian, Others) assigned by annotators.
  "Others" mixes Hispanic, Latino, Middle Eastern and many other groups, so per-group figures for it
  average over very different populations, and groups that are not listed are invisible in this audit.
- **Who labelled them and which faces:** the images were collected from the web with a face detector
  and labelled by a small team; the faces are mostly frontal, well lit and skewed to ages 20-40, and
  the duplicates with conflicting labels found by the audit show the labels contain errors. An external
  test set is needed before believing any figure here transfers to other cameras or populations.
"""


def _fmt_gap(row: pd.Series) -> str:
    ci = ""
    if "difference_ci_low" in row and not pd.isna(row["difference_ci_low"]):
        sig = "interval excludes 0" if row["difference_ci_low"] > 0 else "interval includes 0: not significant"
        ci = f" [95% CI {row['difference_ci_low']:.3f}, {row['difference_ci_high']:.3f}; {sig}]"
    return (f"{row['metric']} across {row['feature']}: {row['worst_group']} {row['worst_value']:.3f} vs "
            f"{row['best_group']} {row['best_value']:.3f}, gap {row['difference']:.3f}{ci}")


def bias_section(data: RunData) -> list[str]:
    gaps = data.gaps.dropna(subset=["worst_group"])
    focus = gaps[gaps["metric"].isin(["age_mae", "gender_accuracy", "false_positive_rate", "false_negative_rate"])]
    lines = ["## Where the model is biased (test split)", ""]
    for _, row in focus.sort_values(["metric", "difference"], ascending=[True, False]).iterrows():
        lines.append(f"- {_fmt_gap(row)}")
    control = data.gaps[data.gaps["feature"].str.startswith("race within", na=False)]
    if len(control):
        values = ", ".join(f"{r['metric']} {r['difference']:.3f}" for _, r in control.iterrows())
        lines += ["", f"Compared within age bands (age drives error, and the age mix differs by race), the mean "
                  f"largest-minus-smallest race gap per band is: {values}."]
    m = data.metrics
    for key, label in (("fair_gender_dp_diff_race", "demographic parity difference of the gender head across race"),
                       ("fair_gender_eo_diff_race", "equalized odds difference of the gender head across race"),
                       ("fair_gender_dp_diff_age_band", "demographic parity difference across age bands"),
                       ("fair_gender_eo_diff_age_band", "equalized odds difference across age bands")):
        if key in m:
            lines.append(f"- {label}: {m[key]:.3f}")
    return lines + [""]


def error_patterns(data: RunData) -> list[str]:
    lines = ["## Patterns in the misclassified samples", ""]
    over = data.overrepresentation
    if over is not None and len(over):
        for label, title in (("worst_age_errors", "worst 5% of age errors"), ("gender_errors", "gender errors")):
            top = over[(over["set"] == label) & (over["ratio"] > 1.2) & (over["n_in_set"] >= 5)].head(5)
            for _, r in top.iterrows():
                lines.append(f"- {title}: {r['feature']} {r['group']} is {r['share_of_set']:.1%} of them vs "
                             f"{r['share_of_split']:.1%} of the test split ({r['ratio']:.2f}x, n={r['n_in_set']})")
    preds = data.predictions
    err = (preds["pred_age"] - preds["age"])
    old = preds["age"] >= 60
    young = preds["age"] <= 9
    wrong = (preds["female_probability"] >= 0.5).astype(int) != preds["gender"]
    lines += [
        f"- Age is under-estimated for people 60 and over by {-err[old].mean():.1f} years on average "
        f"(n={int(old.sum())}): predictions regress toward the crowded 20-40 range.",
        f"- Gender accuracy for children 0-9 is {1 - wrong[young].mean():.1%} (n={int(young.sum())}) against "
        f"{1 - wrong[~young].mean():.1%} for everyone else.",
        "", "Galleries of the worst and best predictions: `samples/` in the run.", "",
    ]
    return lines


def harms_section(data: RunData) -> list[str]:
    m = data.metrics
    return ["## Scenarios where it would do harm", "",
            f"- An age gate at 18 using this model (test MAE {m.get('test_age_mae', float('nan')):.2f} years, "
            f"CS@5 {m.get('test_age_cs5', float('nan')):.1%}) would misjudge many people near the threshold; "
            "with the per-group gaps above, the wrong refusals and wrong admissions fall unevenly.",
            "- Automatic gender labels in photo software or marketing would misgender people, more often "
            "children and the groups with the higher error rates above, and assume that gender is binary "
            "and visible.",
            "- Used as evidence of a person's age (asylum, criminal justice), an error of several years can "
            "change how a person is treated; no figure here supports that use.", ""]


def build_report(data: RunData, mitigation_md: str | None = None) -> str:
    m = data.metrics
    head = [f"# Ethics report: run `{data.run_id}`", "",
            f"Model: {data.params.get('model.backbone')} ({data.params.get('model.age_formulation')} age, "
            f"{data.params.get('loss.weighting')} weighting), {data.params.get('data.image_size')} px. "
            f"Test split: {len(data.predictions)} images. Overall: age MAE {m.get('test_age_mae', float('nan')):.3f}, "
            f"gender accuracy {m.get('test_gender_accuracy', float('nan')):.4f}. All numbers below are measured "
            "on this run's test split; intervals are 95% bootstrap intervals.", ""]
    body = bias_section(data) + error_patterns(data) + harms_section(data)
    if mitigation_md:
        body += [mitigation_md]
    else:
        body += ["## Mitigation", "", "Group-balanced sampling is available as `train.balance` (for example "
                 "`race_gender`); measure it with `python -m reports.mitigation --baseline RUN --mitigated RUN`.", ""]
    return "\n".join(head + body) + DISCUSSION


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m reports.ethics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--mitigated-run", default="", help="a run trained with train.balance, same test split")
    args = parser.parse_args(argv)
    client = mlflow.MlflowClient()
    data = load_run(args.run_id, client)
    mitigation_md = None
    if args.mitigated_run:
        from reports.mitigation import compare, markdown

        after = load_run(args.mitigated_run, client)
        result = compare(data.predictions, after.predictions, feature="race", metric="gender_accuracy")
        mitigation_md = markdown(result, baseline=args.run_id, mitigated=args.mitigated_run,
                                 description=f"group-balanced sampling (train.balance="
                                             f"{after.params.get('train.balance')})")
    report = build_report(data, mitigation_md)
    client.log_text(args.run_id, report, "ethics/ethics_report.md")
    print(report)
    return report


if __name__ == "__main__":
    main()
