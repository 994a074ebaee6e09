"""The search space: YAML checks, conditional parameters, the enqueued base configuration."""

from __future__ import annotations

import optuna
import pytest
import yaml
from conftest import REPO

from mtl.config import load_config
from tuning.space import SearchSpaceError, default_params, load_space, run_name, suggest

SPACE = REPO / "experiments" / "search_space.yaml"


def test_default_space_lists_offline_backbones_and_every_required_dimension():
    space = load_space(SPACE)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(space["backbones"])
    assert all(space["backbones"][f"efficientnet_lite{i}"] == "imagenet" for i in range(3))
    assert "none" in space["backbones"].values()  # small ones from scratch
    for key in ("loss_weighting", "fixed_age_weight", "age_formulation", "regression_loss", "bin_width", "lr",
                "weight_decay", "augment", "image_size", "epochs"):
        assert key in space


@pytest.mark.parametrize("content, problem", [
    ({"backbones": {"resnet18": "none"}, "loss_weighting": ["fixed"]}, "lacks"),
    ({"backbones": [], "loss_weighting": ["fixed"], "age_formulation": ["ordinal"], "lr": 0.001}, "backbones"),
])
def test_malformed_space_names_the_problem(tmp_path, content, problem):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(SearchSpaceError, match=problem):
        load_space(path)
    with pytest.raises(SearchSpaceError, match="not found"):
        load_space(tmp_path / "missing.yaml")


def test_conditional_parameters_follow_their_parent_choice():
    space = load_space(SPACE)
    fixed_regression = suggest(optuna.trial.FixedTrial({
        "backbone": "resnet18", "loss_weighting": "fixed", "fixed_age_weight": 2.0, "age_formulation": "regression",
        "regression_loss": "l1", "lr": 0.001, "weight_decay": 0.01, "augment": 0.5, "image_size": 48, "crop": 1.0,
        "ema_decay": 0.0, "epochs": 8}), space)
    assert fixed_regression["loss.age_weight"] == 2.0 and fixed_regression["loss.regression_loss"] == "l1"
    assert "model.bin_width" not in fixed_regression and fixed_regression["model.weights"] == "none"
    uncertainty_ordinal = suggest(optuna.trial.FixedTrial({
        "backbone": "efficientnet_lite0", "loss_weighting": "uncertainty", "age_formulation": "ordinal",
        "bin_width": 5, "lr": 0.001, "weight_decay": 0.01, "augment": 0.5, "image_size": 64, "crop": 0.8,
        "ema_decay": 0.998, "epochs": 12}), space)
    assert uncertainty_ordinal["model.bin_width"] == 5 and "loss.age_weight" not in uncertainty_ordinal
    assert "loss.regression_loss" not in uncertainty_ordinal
    assert run_name(7, uncertainty_ordinal) == "t007-efficientnet_lite0-ordinal-uncertainty"


def test_enqueued_base_trial_reproduces_the_default_experiment():
    space = load_space(SPACE)
    base = load_config(REPO / space["base_config"])
    overrides = suggest(optuna.trial.FixedTrial(default_params(space, base)), space)
    trial_cfg = load_config(REPO / space["base_config"], overrides)
    assert trial_cfg.flat() == base.flat()  # the first trial of a study is exactly the default run
