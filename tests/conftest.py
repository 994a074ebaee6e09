"""Shared fixtures: the real UTKFace folder beside the repo, temp MLflow stores, small image sets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
