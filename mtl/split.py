"""Seeded train/val/test split, stratified by age band x gender x race, duplicates kept together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtl.labels import age_band

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["file", "age", "gender", "race", "split", "dup_group"]


class SplitError(ValueError):
    """A split manifest that does not fit the data."""


def strata(frame: pd.DataFrame) -> pd.Series:
    """The stratification key of each row: ``"20-29|1|3"`` (age band | gender | race)."""
    return frame["age"].map(age_band) + "|" + frame["gender"].astype(str) + "|" + frame["race"].astype(str)


def stratified_split(frame: pd.DataFrame, *, val_fraction: float, test_fraction: float, seed: int) -> pd.Series:
    """Assign each row to train/val/test; rows sharing ``dup_group`` always get the same split.

    Within every stratum the groups are shuffled with ``seed`` and cut at the requested fractions,
    so each age band x gender x race cell is represented in every split in proportion.
    """
    rng = np.random.default_rng(seed)
    groups = frame.groupby("dup_group", sort=True).agg(first=("file", "first"), n=("file", "size"))
    group_stratum = strata(frame.drop_duplicates("dup_group").set_index("dup_group")).reindex(groups.index)
    assignment: dict[str, str] = {}
    for _, members in groups.groupby(group_stratum, sort=True):
        order = rng.permutation(len(members))
        counts = members["n"].to_numpy()[order]
        # position of each group's midpoint along the stratum, as a fraction of its images
        centre = (np.cumsum(counts) - counts / 2) / counts.sum()
        offset = rng.uniform(0, 1 / max(len(members), 1))  # unbiased rounding for small strata
        centre = (centre + offset) % 1.0
        for name, c in zip(members.index[order], centre):
            assignment[name] = "test" if c < test_fraction else "val" if c < test_fraction + val_fraction else "train"
    return frame["dup_group"].map(assignment).rename("split")


def sample_subset(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A stratified random sample of about ``n`` rows (whole duplicate groups)."""
    if n >= len(frame):
        return frame
    rng = np.random.default_rng(seed + 7919)
    keep = rng.permutation(frame["dup_group"].unique())
    key = strata(frame)
    # take groups in random order per stratum, proportionally
    frame = frame.assign(_key=key, _rank=frame["dup_group"].map({g: i for i, g in enumerate(keep)}))
    frame = frame.sort_values("_rank")
    frame["_pos"] = frame.groupby("_key").cumcount() / frame.groupby("_key")["file"].transform("size")
    return frame[frame["_pos"] < n / len(frame)].drop(columns=["_key", "_rank", "_pos"]).sort_index()


def apply_manifest(frame: pd.DataFrame, manifest_path: str | Path) -> pd.Series:
    """Splits from a saved manifest; every test file of the manifest must be present in ``frame``."""
    path = Path(manifest_path).expanduser()
    if not path.is_file():
        raise SplitError(f"split manifest not found: {path}")
    manifest = pd.read_csv(path)
    missing_cols = {"file", "split"} - set(manifest.columns)
    if missing_cols:
        raise SplitError(f"split manifest {path} lacks column(s) {sorted(missing_cols)}")
    bad = set(manifest["split"]) - set(SPLITS)
    if bad:
        raise SplitError(f"split manifest {path}: unknown split value(s) {sorted(bad)}")
    lookup = dict(zip(manifest["file"], manifest["split"]))
    test_files = set(manifest.loc[manifest["split"] == "test", "file"])
    absent = test_files - set(frame["file"])
    if absent:
        raise SplitError(
            f"split manifest {path}: {len(absent)} test file(s) are not usable in this data, "
            f"e.g. {sorted(absent)[:3]}; the test set would differ"
        )
    return frame["file"].map(lookup).rename("split")  # NaN: file not in manifest (left out)


def manifest(frame: pd.DataFrame) -> pd.DataFrame:
    """The split manifest to log: file, labels, split, duplicate group."""
    return frame[MANIFEST_COLUMNS].sort_values(["split", "file"]).reset_index(drop=True)
