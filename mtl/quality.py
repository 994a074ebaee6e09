"""Data-quality findings: bad names, unreadable images, exact duplicates and label conflicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

PROBLEM_KINDS = ("bad_name", "unreadable", "duplicate", "conflicting_duplicate")
ACTIONS = {
    "bad_name": "skipped",
    "unreadable": "skipped",
    "duplicate": "kept; identical images share one split",
    "conflicting_duplicate": "dropped (labels disagree)",
}


def find_duplicates(records: pd.DataFrame) -> pd.DataFrame:
    """Mark exact pixel duplicates: adds ``dup_group`` (pixel hash of the group) and flags conflicts.

    Rows that share a pixel hash get ``problem='duplicate'``; when their (age, gender, race) labels
    disagree, every member gets ``problem='conflicting_duplicate'`` and will be dropped.
    """
    out = records.copy()
    out["dup_group"] = out["pixel_hash"].where(out["pixel_hash"] != "", out["file"])
    decoded = out[out["problem"] == ""]
    dups = decoded[decoded.groupby("pixel_hash")["file"].transform("size") > 1]
    if len(dups):
        n_labelings = dups.groupby("pixel_hash")[["age", "gender", "race"]].apply(lambda g: len(g.drop_duplicates()))
        members = dups.groupby("pixel_hash")["file"].agg(list)
        out.loc[dups.index, "problem"] = np.where(dups["pixel_hash"].map(n_labelings) > 1,
                                                  "conflicting_duplicate", "duplicate")
        out.loc[dups.index, "detail"] = [
            "same pixels as " + ", ".join(f for f in members[h] if f != name)
            for name, h in zip(dups["file"], dups["pixel_hash"])]
    return out


def quality_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged file: file, problem, detail, action taken."""
    flagged = records[records["problem"] != ""][["file", "problem", "detail"]].copy()
    flagged["action"] = flagged["problem"].map(ACTIONS)
    return flagged.sort_values(["problem", "file"]).reset_index(drop=True)


def quality_summary(records: pd.DataFrame) -> dict[str, int]:
    """Counts per problem kind, plus files read and files usable for training."""
    counts = {f"dq_{kind}": int((records["problem"] == kind).sum()) for kind in PROBLEM_KINDS}
    counts["dq_files"] = len(records)
    counts["dq_usable"] = int(records["problem"].isin(["", "duplicate"]).sum())
    dup = records[records["problem"].isin(["duplicate", "conflicting_duplicate"])]
    counts["dq_duplicate_groups"] = int(dup["dup_group"].nunique())
    return counts


def usable(records: pd.DataFrame) -> pd.DataFrame:
    """Rows that training may use: decoded, labelled, and not in a conflicting duplicate group."""
    return records[records["problem"].isin(["", "duplicate"])].reset_index(drop=True)
