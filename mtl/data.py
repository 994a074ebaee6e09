"""From a data path to split, labelled, cached images: the data stage of every run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtl.cache import load_decoded
from mtl.config import DataConfig
from mtl.quality import find_duplicates, quality_summary, quality_table, usable
from mtl.sources import open_source
from mtl.split import apply_manifest, sample_subset, stratified_split

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    frame: pd.DataFrame  # usable rows with labels, cache_index, dup_group and split
    images: np.ndarray  # memory-mapped (n, size, size, 3) uint8 cache
    quality: pd.DataFrame  # one row per flagged file
    summary: dict[str, int]  # dq_* counts
    cache_path: Path
    content_key: str

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name].reset_index(drop=True)


def prepare_data(cfg: DataConfig, seed: int) -> PreparedData:
    """Open, decode (cached), audit, subset and split the data described by ``cfg``."""
    if not cfg.path:
        raise ValueError("data.path is not set: pass -P data=PATH (a UTKFace folder or the Kaggle zip)")
    source = open_source(cfg.path)
    decoded = load_decoded(source, cfg.image_size, cfg.cache_dir, workers=cfg.workers, crop=cfg.crop)
    records = find_duplicates(decoded.records)
    frame = usable(records)
    if cfg.subset:
        frame = sample_subset(frame, cfg.subset, seed).reset_index(drop=True)
    if cfg.split_manifest:
        frame["split"] = apply_manifest(frame, cfg.split_manifest)
        left_out = int(frame["split"].isna().sum())
        if left_out:
            log.warning("%d usable files are not in the split manifest and are left out", left_out)
        frame = frame.dropna(subset=["split"]).reset_index(drop=True)
    else:
        frame["split"] = stratified_split(frame, val_fraction=cfg.val_fraction,
                                          test_fraction=cfg.test_fraction, seed=seed)
    summary = quality_summary(records)
    summary.update({f"n_{s}": int((frame["split"] == s).sum()) for s in ("train", "val", "test")})
    return PreparedData(frame=frame, images=decoded.images, quality=quality_table(records), summary=summary,
                        cache_path=decoded.cache_path, content_key=decoded.key)
