"""Sources, the decode-once cache, data-quality findings and the split, on real images."""

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from mtl.cache import load_decoded
from mtl.config import DataConfig
from mtl.data import prepare_data
from mtl.quality import find_duplicates, quality_summary
from mtl.sources import DataSourceError, open_source
from mtl.split import SplitError, manifest, stratified_split


def _inject_flaws(folder, utkface_dir, real_names):
    """A corrupt JPEG, an unparsable name, an agreeing duplicate and a conflicting duplicate."""
    files = sorted(p.name for p in folder.iterdir())
    good = (folder / files[0]).read_bytes()
    (folder / "33_0_0_20990101000000001.jpg.chip.jpg").write_bytes(good[:500])  # truncated
    shutil.copy(folder / files[1], folder / "45_1_20170116174525125.jpg.chip.jpg")  # 3 fields
    a, g, r, _ = files[2].split("_", 3)
    shutil.copy(folder / files[2], folder / f"{a}_{g}_{r}_20991231000000001.jpg.chip.jpg")  # same labels
    a, g, r, _ = files[3].split("_", 3)
    shutil.copy(folder / files[3], folder / f"{int(a) + 20}_{g}_{r}_20991231000000000.jpg.chip.jpg")
    return files


def test_flaws_are_found_counted_and_skipped(small_copy, utkface_dir, real_names, tmp_path):
    files = _inject_flaws(small_copy, utkface_dir, real_names)
    decoded = load_decoded(open_source(small_copy), 32, tmp_path / "cache", workers=1)
    records = find_duplicates(decoded.records)
    summary = quality_summary(records)
    assert summary["dq_unreadable"] == 1
    assert summary["dq_bad_name"] == 1
    assert summary["dq_duplicate"] == 2  # the original and its same-label copy
    assert summary["dq_conflicting_duplicate"] == 2
    assert summary["dq_usable"] == summary["dq_files"] - 4
    bad = records.set_index("file")
    assert bad.loc["33_0_0_20990101000000001.jpg.chip.jpg", "problem"] == "unreadable"
    assert bad.loc[files[3], "problem"] == "conflicting_duplicate"
    assert decoded.images.shape == (summary["dq_files"] - 2, 32, 32, 3)


def test_cache_is_reused_and_keyed_by_content(small_copy, tmp_path):
    first = load_decoded(open_source(small_copy), 24, tmp_path / "cache", workers=1)
    again = load_decoded(open_source(small_copy), 24, tmp_path / "cache", workers=1)
    assert again.cache_path == first.cache_path and np.array_equal(np.asarray(again.images), np.asarray(first.images))
    other_size = load_decoded(open_source(small_copy), 16, tmp_path / "cache", workers=1)
    assert other_size.cache_path != first.cache_path
    victim = sorted(small_copy.iterdir())[0]
    victim.rename(victim.with_name("99_0_0_20990101000000000.jpg.chip.jpg"))
    changed = load_decoded(open_source(small_copy), 24, tmp_path / "cache", workers=1)
    assert changed.key != first.key
    assert isinstance(first.images, np.memmap)


def test_kaggle_zip_reads_the_utkface_folder(small_copy, tmp_path):
    archive = tmp_path / "utkface-new.zip"
    names = sorted(p.name for p in small_copy.iterdir())
    with zipfile.ZipFile(archive, "w") as zf:
        for name in names:
            zf.write(small_copy / name, f"UTKFace/{name}")
            zf.write(small_copy / name, f"crop_part1/{name}")  # the Kaggle zip has other folders too
    source = open_source(archive)
    assert source.kind == "zip" and list(source.names) == names
    from_zip = load_decoded(source, 24, tmp_path / "cache", workers=1)
    from_folder = load_decoded(open_source(small_copy), 24, tmp_path / "cache", workers=1)
    assert np.array_equal(np.asarray(from_zip.images), np.asarray(from_folder.images))


def test_missing_or_empty_source_is_named(tmp_path):
    with pytest.raises(DataSourceError, match="not found"):
        open_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="no .jpg/.png images"):
        open_source(tmp_path / "empty")


@pytest.fixture(scope="module")
def real_frame(utkface_dir, tmp_path_factory):
    data = prepare_data(DataConfig(path=str(utkface_dir), image_size=32,
                                   cache_dir=str(tmp_path_factory.mktemp("cache"))), seed=0)
    return data


def test_real_duplicates_stay_in_one_split(real_frame):
    frame = real_frame.frame
    assert real_frame.summary["dq_duplicate_groups"] > 100  # the real folder has many
    splits_per_group = frame.groupby("dup_group")["split"].nunique()
    assert splits_per_group.max() == 1
    assert (frame.groupby("dup_group").size() > 1).sum() > 50


def test_split_is_stratified_and_seeded(real_frame):
    frame = real_frame.frame
    shares = frame["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.15, abs=0.01) and shares["val"] == pytest.approx(0.10, abs=0.01)
    for column in ("gender", "race"):
        by_split = frame.groupby("split")[column].value_counts(normalize=True).unstack()
        assert (by_split.max() - by_split.min()).max() < 0.02
    again = stratified_split(frame, val_fraction=0.1, test_fraction=0.15, seed=0)
    other = stratified_split(frame, val_fraction=0.1, test_fraction=0.15, seed=1)
    assert (again == frame["split"]).all() and (other != frame["split"]).any()


def test_saved_manifest_reproduces_the_test_set(real_frame, utkface_dir, tmp_path):
    path = tmp_path / "split.csv"
    manifest(real_frame.frame).to_csv(path, index=False)
    again = prepare_data(DataConfig(path=str(utkface_dir), image_size=32, split_manifest=str(path),
                                    cache_dir=str(real_frame.cache_path.parent)), seed=123)
    assert set(again.split("test")["file"]) == set(real_frame.split("test")["file"])
    broken = pd.read_csv(path)
    broken.loc[broken["split"] == "test", "file"] = broken.loc[broken["split"] == "test", "file"] + "x"
    broken.to_csv(path, index=False)
    with pytest.raises(SplitError, match="test file"):
        prepare_data(DataConfig(path=str(utkface_dir), image_size=32, split_manifest=str(path),
                                cache_dir=str(real_frame.cache_path.parent)), seed=0)
