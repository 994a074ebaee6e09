"""Batches of cached uint8 images and labels for training and evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class FaceBatches(Dataset):
    """Items are whole batches: an index list in, ``(images NHWC uint8, age, gender)`` out.

    Reading a batch with one fancy-index on the memory-mapped cache is much faster than
    per-image reads; augmentation (albumentations) runs per image on the uint8 arrays.
    """

    def __init__(self, images: np.ndarray, cache_index: np.ndarray, age: np.ndarray, gender: np.ndarray,
                 augment=None):
        if not (len(cache_index) == len(age) == len(gender)):
            raise ValueError(f"lengths differ: {len(cache_index)} images, {len(age)} ages, {len(gender)} genders")
        self.images, self.cache_index, self.augment = images, np.asarray(cache_index), augment
        self.age = torch.tensor(np.array(age, dtype=np.float32))
        self.gender = torch.tensor(np.array(gender, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.cache_index)

    def __getitem__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows_arr = np.asarray(rows)
        order = np.argsort(self.cache_index[rows_arr])  # sorted reads from the memmap
        pixels = np.empty((len(rows_arr),) + self.images.shape[1:], dtype=np.uint8)
        pixels[order] = self.images[self.cache_index[rows_arr][order]]
        if self.augment is not None:
            for i in range(len(pixels)):
                pixels[i] = self.augment(image=pixels[i])["image"]
        return torch.from_numpy(pixels), self.age[rows_arr], self.gender[rows_arr]


class BatchIndexSampler(Sampler[list[int]]):
    """Yields lists of row indices; shuffled with a per-epoch seed when ``shuffle``."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 weights: np.ndarray | None = None):
        if weights is not None and len(weights) != n:
            raise ValueError(f"{len(weights)} sampling weights for {n} rows")
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.probabilities = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.probabilities is not None:  # group-balanced: draw with replacement
            order = rng.choice(self.n, size=self.n, replace=True, p=self.probabilities)
        else:
            order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        stop = self.n - self.n % self.batch_size if self.drop_last else self.n
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


def make_loader(dataset: FaceBatches, batch_size: int, *, shuffle: bool, seed: int = 0, workers: int = 0,
                weights: np.ndarray | None = None) -> DataLoader:
    """A DataLoader over whole batches (``batch_size=None``: the sampler forms the batches);
    ``weights`` makes the sampler draw rows with probability proportional to them."""
    sampler = BatchIndexSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, drop_last=shuffle, weights=weights)
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers,
                      persistent_workers=workers > 0, worker_init_fn=_seed_worker if workers else None)


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    ds = info.dataset
    if ds.augment is not None and hasattr(ds.augment, "set_random_seed"):
        ds.augment.set_random_seed(info.seed % 2**31)


def balancing_weights(frame, by: str) -> np.ndarray | None:
    """Per-row weights 1 / size of the row's group, so every group is drawn equally often.

    ``by``: "none", or columns joined by "_": "race", "gender", "race_gender", "age_band_race"...
    """
    if by == "none":
        return None
    from mtl.labels import age_band

    columns = {"age_band": frame["age"].map(age_band), "race": frame["race"], "gender": frame["gender"]}
    parts, rest = [], by
    while rest:  # "age_band_race" -> ["age_band", "race"]
        name = next((c for c in columns if rest.startswith(c)), None)
        if name is None:
            raise ValueError(f"train.balance={by!r}: cannot read {rest!r}; join race, gender, age_band with '_'")
        parts.append(name)
        rest = rest[len(name):].removeprefix("_")
    sizes = frame.groupby([columns[p] for p in parts])["age"].transform("size")
    return (1.0 / sizes).to_numpy()


def to_model_input(pixels: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in [0, 1] (channels_last memory when asked)."""
    x = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
