"""Decode once: every image is decoded, checked and resized into a memory-mapped uint8 cache.

The cache is keyed by a hash of the images' names and bytes and by the resolution, so a changed
folder or another resolution gets its own cache, and epochs read arrays instead of JPEGs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtl.images import ImageDecodeError, decode_bytes, square_resize
from mtl.labels import LabelError, parse_labels
from mtl.sources import ImageSource

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


@dataclass
class DecodedImages:
    """All images of a source: one row per file in ``records``; decoded pixels in ``images``.

    ``records.cache_index`` is the row in ``images`` (-1 when the file could not be used);
    ``records.problem`` / ``records.detail`` say why a file is unusable.
    """

    records: pd.DataFrame
    images: np.ndarray  # (n_decoded, size, size, 3) uint8, memory-mapped
    size: int
    key: str
    cache_path: Path


def content_key(source: ImageSource) -> str:
    """Hash of every image's name and bytes (order-independent of the file system)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, data in source.iter_bytes():
        digest.update(name.encode())
        digest.update(hashlib.blake2b(data, digest_size=16).digest())
    return digest.hexdigest()


def _inspect(item: tuple[str, bytes, int, float]) -> tuple[dict, np.ndarray | None]:
    name, data, size, crop = item
    row: dict = {"file": name, "age": -1, "gender": -1, "race": -1, "problem": "", "detail": "",
                 "pixel_hash": "", "width": 0, "height": 0, "grayscale": False, "n_bytes": len(data)}
    try:
        labels = parse_labels(name)
        row.update(age=labels.age, gender=labels.gender, race=labels.race)
    except LabelError as exc:
        row.update(problem="bad_name", detail=str(exc))
        return row, None
    try:
        rgb = decode_bytes(data)
    except ImageDecodeError as exc:
        row.update(problem="unreadable", detail=str(exc))
        return row, None
    row["pixel_hash"] = hashlib.blake2b(rgb.tobytes() + str(rgb.shape).encode(), digest_size=12).hexdigest()
    row["height"], row["width"] = rgb.shape[:2]
    row["grayscale"] = bool(
        np.abs(rgb[..., 0].astype(np.int16) - rgb[..., 1]).max() <= 2
        and np.abs(rgb[..., 1].astype(np.int16) - rgb[..., 2]).max() <= 2
    )
    return row, square_resize(rgb, size, crop)


def _chunks(source: ImageSource, size: int, crop: float, chunk: int = 256):
    batch = []
    for name, data in source.iter_bytes():
        batch.append((name, data, size, crop))
        if len(batch) == chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def _inspect_chunk(batch: list[tuple[str, bytes, int, float]]) -> list[tuple[dict, np.ndarray | None]]:
    return [_inspect(item) for item in batch]


def _build(source: ImageSource, size: int, crop: float, target: Path, workers: int) -> None:
    n = len(source.names)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        rows, filled = [], 0
        progress = tqdm(total=n, desc=f"decoding images to {size}px cache", unit="img")
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            chunks = _chunks(source, size, crop)
            results = pool.map(_inspect_chunk, chunks) if pool else map(_inspect_chunk, chunks)
            for chunk in results:
                for row, pixels in chunk:
                    row["cache_index"] = -1
                    if pixels is not None:
                        images[filled] = pixels
                        row["cache_index"] = filled
                        filled += 1
                    rows.append(row)
                progress.update(len(chunk))
        finally:
            progress.close()
            if pool:
                pool.shutdown()
        images.flush()
        del images
        if filled < n:  # shrink the array file to the decoded rows
            full = np.load(tmp / "images.npy", mmap_mode="r")
            trimmed = np.lib.format.open_memmap(tmp / "images.tmp.npy", mode="w+", dtype=np.uint8,
                                                shape=(filled, size, size, 3))
            trimmed[:] = full[:filled]
            trimmed.flush()
            del trimmed, full
            os.replace(tmp / "images.tmp.npy", tmp / "images.npy")
        pd.DataFrame(rows).to_csv(tmp / "records.csv", index=False)
        (tmp / "meta.json").write_text(json.dumps({"format": CACHE_FORMAT, "size": size, "crop": crop, "n_files": n,
                                                    "n_decoded": filled, "source": str(source.path)}))
        _publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _is_complete(target: Path) -> bool:
    meta = target / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("format") == CACHE_FORMAT


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished cache into place. If another process (a parallel study worker) published the
    same cache meanwhile, keep theirs: it may already be memory-mapped, and its content is identical."""
    if _is_complete(target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if target.exists():
        shutil.rmtree(target)  # an incomplete or outdated cache
    try:
        os.replace(tmp, target)
    except OSError:
        if not _is_complete(target):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # lost the race to an identical cache


def load_decoded(source: ImageSource, size: int, cache_dir: str | Path, workers: int = 2,
                 crop: float = 1.0) -> DecodedImages:
    """Return the decoded cache for ``source`` at ``size`` px (centre ``crop``), building it on first use."""
    cache_root = Path(cache_dir).expanduser()
    cache_root.mkdir(parents=True, exist_ok=True)
    key = content_key(source)
    target = cache_root / (f"{key}-{size}px" + (f"-crop{crop:g}" if crop != 1 else ""))
    if not _is_complete(target):
        log.info("building image cache %s", target)
        _build(source, size, crop, target, workers)
    records = pd.read_csv(target / "records.csv", keep_default_na=False,
                          dtype={"problem": str, "detail": str, "pixel_hash": str})
    images = np.load(target / "images.npy", mmap_mode="r")
    return DecodedImages(records=records, images=images, size=size, key=key, cache_path=target)
