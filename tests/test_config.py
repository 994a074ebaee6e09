import pytest
from conftest import REPO

from mtl.config import ConfigError, RunConfig, from_flat, load_config, parse_overrides


def test_default_yaml_loads_and_validates():
    cfg = load_config(REPO / "experiments" / "default.yaml")
    assert cfg.model.backbone == "efficientnet_lite0"
    assert cfg.data.image_size == 64


def test_overrides_are_typed():
    cfg = load_config(None, parse_overrides(["train.epochs=3", "train.lr=1e-3", "model.age_formulation=regression",
                                             "train.channels_last=false", "data.subset=none"]))
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.age_formulation == "regression"
    assert cfg.train.channels_last is False
    assert cfg.data.subset is None


@pytest.mark.parametrize("overrides, message", [
    ({"train.epoch": 3}, "unknown config field 'train.epoch'"),
    ({"train.epochs": "many"}, "train.epochs='many'"),
    ({"model.age_formulation": "classification"}, "model.age_formulation"),
    ({"data.test_fraction": 1.5}, "data.test_fraction"),
    ({"train.ema_decay": 1.0}, "train.ema_decay=1.0"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_logged_params_rebuild_the_same_config():
    cfg = load_config(REPO / "experiments" / "default.yaml", {"seed": 7, "data.path": "/x"})
    logged = {k: str(v) for k, v in cfg.flat().items()}  # MLflow stores params as strings
    assert from_flat(logged) == cfg


def test_flat_has_dotted_keys():
    flat = RunConfig().flat()
    assert "train.lr" in flat and "model.backbone" in flat and "seed" in flat
