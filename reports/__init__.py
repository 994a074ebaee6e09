"""Reports: EDA, per-group (fairness) metrics, LIME explanations, ethics report and model card."""
