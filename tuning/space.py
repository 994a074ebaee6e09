"""The search space: read from YAML, sampled per trial into config overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import yaml

REQUIRED = ("backbones", "loss_weighting", "age_formulation", "lr")
# optional space keys (a range, a list of choices or a fixed value) and the config field each sets
OPTIONAL = {"weight_decay": "train.weight_decay", "augment": "train.augment", "ema_decay": "train.ema_decay",
            "image_size": "data.image_size", "crop": "data.crop", "epochs": "train.epochs"}


class SearchSpaceError(ValueError):
    """A search-space file that is missing or malformed."""


def load_space(path: str | Path) -> dict[str, Any]:
    """Read and check a search-space YAML file."""
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"search space file not found: {path}")
    space = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in REQUIRED if k not in space]
    if missing:
        raise SearchSpaceError(f"search space {path} lacks {missing}")
    if not isinstance(space["backbones"], dict) or not space["backbones"]:
        raise SearchSpaceError(f"search space {path}: 'backbones' must map timm names to weights")
    return space


def _range(trial: optuna.Trial, name: str, spec: Any) -> Any:
    if isinstance(spec, dict):
        low, high = spec["low"], spec["high"]
        if isinstance(low, int) and isinstance(high, int) and not spec.get("float"):
            return trial.suggest_int(name, low, high, log=spec.get("log", False))
        return trial.suggest_float(name, float(low), float(high), log=spec.get("log", False))
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    return spec  # a fixed value


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """Sample one configuration; returns dotted config overrides (``{"model.backbone": ...}``)."""
    backbone = trial.suggest_categorical("backbone", list(space["backbones"]))
    out: dict[str, Any] = {"model.backbone": backbone, "model.weights": space["backbones"][backbone]}
    weighting = _range(trial, "loss_weighting", space["loss_weighting"])
    out["loss.weighting"] = weighting
    if weighting == "fixed":
        out["loss.age_weight"] = _range(trial, "fixed_age_weight", space.get("fixed_age_weight", 1.0))
        out["loss.gender_weight"] = 1.0
    formulation = _range(trial, "age_formulation", space["age_formulation"])
    out["model.age_formulation"] = formulation
    if formulation == "regression":
        out["loss.regression_loss"] = _range(trial, "regression_loss", space.get("regression_loss", "smooth_l1"))
    else:
        out["model.bin_width"] = _range(trial, "bin_width", space.get("bin_width", 1))
    out["train.lr"] = _range(trial, "lr", space["lr"])
    for key, target in OPTIONAL.items():
        if key in space:
            out[target] = _range(trial, key, space[key])
    return out


def run_name(number: int, overrides: dict[str, Any]) -> str:
    """Readable MLflow run name, e.g. ``t007-efficientnet_lite0-ordinal-uncertainty``."""
    return f"t{number:03d}-{overrides['model.backbone']}-{overrides['model.age_formulation']}-{overrides['loss.weighting']}"


def default_params(space: dict[str, Any], cfg) -> dict[str, Any]:
    """The base configuration expressed as trial parameters, to enqueue as a study's first trial
    (a known-good starting point for the sampler). Only parameters the space defines are set."""
    params = {"backbone": cfg.model.backbone, "loss_weighting": cfg.loss.weighting,
              "age_formulation": cfg.model.age_formulation, "lr": cfg.train.lr}
    if cfg.loss.weighting == "fixed":
        params["fixed_age_weight"] = cfg.loss.age_weight / max(cfg.loss.gender_weight, 1e-9)
    if cfg.model.age_formulation == "ordinal":
        params["bin_width"] = cfg.model.bin_width
    else:
        params["regression_loss"] = cfg.loss.regression_loss
    flat = cfg.flat()
    for key, target in OPTIONAL.items():
        if isinstance(space.get(key), (list, dict)):
            params[key] = flat[target]
    names = {"backbone": "backbones"}
    return {k: v for k, v in params.items() if _allowed(space.get(names.get(k, k)), v)}


def _allowed(spec: Any, value: Any) -> bool:
    """Whether ``value`` is a valid draw from ``spec`` (a list of choices, a range, or a mapping of backbones)."""
    if spec is None:
        return False
    if isinstance(spec, dict) and "low" in spec:
        return spec["low"] <= value <= spec["high"]
    if isinstance(spec, (list, dict)):
        return value in spec
    return value == spec
