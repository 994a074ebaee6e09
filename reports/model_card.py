"""Model card (Markdown) for a registered model version, from its source run's measured numbers.

    python -m reports.model_card --name utkface-mtl --version 3

Sets the card as the version's description in the registry and logs ``model_card.md`` to the run.
"""

from __future__ import annotations

import argparse

import mlflow

from reports.run_data import RunData, load_run


def _table(frame, columns) -> list[str]:
    present = [c for c in columns if c in frame.columns]
    lines = ["| group | " + " | ".join(present) + " |", "|---|" + "---|" * len(present)]
    for group, row in frame.iterrows():
        lines.append(f"| {group} | " + " | ".join(f"{row[c]:.3f}" if c != "n" else f"{int(row[c])}" for c in present)
                     + " |")
    return lines


def model_card(data: RunData, *, name: str = "", version: str = "") -> str:
    """The card's Markdown: intended use, data, metrics overall and per group, known limits."""
    p, m = data.params, data.metrics
    lines = [
        f"# Model card: {name or 'utkface-mtl'}{' v' + version if version else ''}", "",
        "## Model",
        f"One network, one forward pass: a timm `{p.get('model.backbone')}` trunk "
        f"(weights: {p.get('model.weights')}), a gender head (one logit) and a "
        f"{p.get('model.age_formulation')} age head; {p.get('loss.weighting')} loss weighting; "
        f"{p.get('data.image_size')} px input (centre crop {p.get('data.crop')}). Source run `{data.run_id}`.", "",
        "## Intended use",
        "Research and teaching on multi-task learning and fairness auditing; aggregate, consented statistics. "
        "Not for decisions about individuals (age verification, hiring, policing, immigration, medical), "
        "not for assigning anyone a gender. See the run's `ethics/ethics_report.md`.", "",
        "## Data",
        f"UTKFace (non-commercial research licence): aligned face crops with annotated age, binary gender and "
        f"five coarse race categories. After the audit: {int(m.get('dq_usable', 0))} usable of "
        f"{int(m.get('dq_files', 0))} files ({int(m.get('dq_conflicting_duplicate', 0))} dropped as duplicates with "
        f"conflicting labels, {int(m.get('dq_bad_name', 0))} unparsable names, {int(m.get('dq_unreadable', 0))} "
        f"unreadable). Split train/val/test {int(m.get('n_train', 0))}/{int(m.get('n_val', 0))}/"
        f"{int(m.get('n_test', 0))}, stratified by age band x gender x race, seed {p.get('seed')}.", "",
        "## Metrics (test split)",
        f"- age MAE {m.get('test_age_mae', float('nan')):.3f} years (trivial baseline "
        f"{m.get('test_baseline_age_mae', float('nan')):.3f}), RMSE {m.get('test_age_rmse', float('nan')):.3f}, "
        f"CS@5 {m.get('test_age_cs5', float('nan')):.3f}, MAE ages 21-60 {m.get('test_age_mae_21_60', float('nan')):.3f}",
        f"- gender accuracy {m.get('test_gender_accuracy', float('nan')):.4f} (baseline "
        f"{m.get('test_baseline_gender_accuracy', float('nan')):.4f}), F1 {m.get('test_gender_f1', float('nan')):.4f}, "
        f"ROC AUC {m.get('test_gender_roc_auc', float('nan')):.4f}",
        f"- 80% age interval coverage {m.get('test_age_interval_coverage', float('nan')):.3f}", "",
        "## Metrics per group (test split, 95% bootstrap intervals in the run's `fairness/` tables)", "",
    ]
    for feature in ("race", "gender", "age_band"):
        if feature in data.by_group:
            lines += [f"### by {feature}", *_table(data.by_group[feature],
                                                   ["age_mae", "gender_accuracy", "false_positive_rate",
                                                    "false_negative_rate", "n"]), ""]
    lines += [
        "## Known limits",
        "- Learns annotated (apparent) age and a binary, perceived gender label; not real age or gender identity.",
        f"- Largest measured gaps: age MAE across age bands {m.get('fair_age_mae_gap_age_band', float('nan')):.2f} "
        f"years, across race {m.get('fair_age_mae_gap_race', float('nan')):.2f}; gender accuracy across age bands "
        f"{m.get('fair_gender_acc_gap_age_band', float('nan')):.3f}, across race "
        f"{m.get('fair_gender_acc_gap_race', float('nan')):.3f}.",
        "- Trained on web images of mostly frontal, well-lit faces; other cameras, poses and populations "
        "are untested. Scores on an external test set are not part of this card.",
        "- Registered models are code (a pickled Python model): load them only from a trusted registry.", "",
    ]
    return "\n".join(lines)


def write_card(name: str, version: str, client: mlflow.MlflowClient | None = None) -> str:
    """Build the card for a registry version, store it as its description and in its run."""
    client = client or mlflow.MlflowClient()
    mv = client.get_model_version(name, version)
    card = model_card(load_run(mv.run_id, client), name=name, version=str(version))
    client.update_model_version(name, version, description=card)
    client.log_text(mv.run_id, card, "model_card.md")
    return card


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m reports.model_card", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="utkface-mtl")
    parser.add_argument("--version", required=True)
    args = parser.parse_args(argv)
    card = write_card(args.name, args.version)
    print(card)
    return card


if __name__ == "__main__":
    main()
