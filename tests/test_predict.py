"""The batch prediction CLI over files, folders and zips, with an error row for a corrupt file."""

import shutil
import zipfile

import pandas as pd

from mtl.predict import main


def test_batch_cli_writes_one_row_per_image_and_an_error_row(tiny_registered_model, small_copy, tmp_path, monkeypatch):
    uri, _ = tiny_registered_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    files = sorted(small_copy.iterdir())[:6]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in files[:4]:
        shutil.copy(f, folder / f.name)
    (folder / "broken.jpg").write_bytes(files[4].read_bytes()[:300])
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(files[5], f"faces/{files[5].name}")
    out = tmp_path / "predictions.csv"
    assert main(["--model", "models:/utkface-mtl@champion", str(folder), str(archive), str(tmp_path / "missing.jpg"),
                 "-o", str(out)]) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 7
    errors = frame.set_index("path")["error"]
    assert "corrupt or truncated" in errors[str(folder / "broken.jpg")]
    assert "no such file" in errors[str(tmp_path / "missing.jpg")]
    good = frame[frame["error"] == ""]
    assert len(good) == 5
    assert good["age"].astype(float).between(1, 116).all()
    assert set(good["gender"]) <= {"male", "female"}
    assert any(p.startswith(f"{archive}:faces/") for p in good["path"])
