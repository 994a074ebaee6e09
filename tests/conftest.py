"""Shared fixtures: the real UTKFace folder beside the repo, temp MLflow stores, small image sets."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("UTKFACE_DIR", REPO.parent / "shared" / "data" / "UTKFace"))


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"UTKFace images not found at {DATA}; set UTKFACE_DIR")
    return DATA


@pytest.fixture(scope="session")
def real_names(utkface_dir) -> list[str]:
    return sorted(os.listdir(utkface_dir))


@pytest.fixture
def small_copy(tmp_path, utkface_dir, real_names) -> Path:
    """A temp folder with 60 real, well-formed images (every 300th file)."""
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    picked = [n for n in real_names if n.count("_") == 3 and n.endswith(".jpg.chip.jpg")][::300][:60]
    for name in picked:
        shutil.copy(utkface_dir / name, folder / name)
    return folder


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow tracking store and registry (SQLite) in a temp dir."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # artifacts land under tmp_path, never in the repo
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def tiny_registered_model(utkface_dir, tmp_path_factory):
    """A small model trained on real images (1 epoch), logged and registered as ``utkface-mtl``
    with the alias ``champion`` in a temp SQLite registry. Yields (tracking_uri, run result)."""
    import mlflow

    from mtl.config import load_config
    from mtl.train import run

    folder = tmp_path_factory.mktemp("registry")
    with temporary_tracking(folder) as uri:
        cfg = load_config(REPO / "experiments" / "default.yaml", {
            "data.path": str(utkface_dir), "data.cache_dir": str(folder / "cache"), "data.subset": 600,
            "train.epochs": 1, "train.batch_size": 64, "experiment": "tiny",
            "train.registered_model_name": "utkface-mtl"})
        result = run(cfg)
        client = mlflow.MlflowClient(uri)
        version = client.search_model_versions("name='utkface-mtl'")[0].version
        client.set_registered_model_alias("utkface-mtl", "champion", version)
        yield uri, result


@contextlib.contextmanager
def temporary_tracking(folder: Path):
    """Point MLflow (and subprocesses, via the environment) at a SQLite store in ``folder``, run there."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved_cwd, saved_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(folder)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        os.chdir(saved_cwd)
        if saved_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_uri


@pytest.fixture
def tiny_space(tmp_path) -> Path:
    """A tiny search space (two small backbones, 3 epochs, batch 32, small report) over a copy of
    the default experiment, for real studies that finish in seconds per trial."""
    base = yaml.safe_load((REPO / "experiments" / "default.yaml").read_text())
    base["train"].update(batch_size=32, max_minutes=None, patience=0)
    base["report"] = {"fairness_boot": 20, "gallery_size": 4, "lime_worst": 0, "lime_best": 0,
                      "lime_gender_errors": 0, "lime_per_group": 0, "lime_samples": 40}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    space = {"base_config": str(tmp_path / "base.yaml"),
             "backbones": {"mobilenetv3_small_050": "none", "efficientnet_lite0": "imagenet"},
             "loss_weighting": ["fixed", "uncertainty"], "fixed_age_weight": {"low": 0.3, "high": 3.0, "log": True},
             "age_formulation": ["regression", "ordinal"], "regression_loss": ["l1", "smooth_l1"],
             "bin_width": [2, 5], "lr": {"low": 0.001, "high": 0.005, "log": True}, "epochs": 3}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path
