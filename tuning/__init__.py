"""Optuna studies over backbone, loss weighting and age formulation (each trial an MLflow run)."""
