"""Images/s of the suite's training loop versus a bare timm + PyTorch loop, in one process.

Same backbone, resolution, batch size, optimizer and cached data; the suite's loop adds its
augmentation, the multi-task heads and losses, loss weighting and metric bookkeeping.

    python -m bench.train_speed --data ../shared/data/UTKFace [--batches 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from mtl.config import load_config
from mtl.data import prepare_data
from mtl.dataset import FaceBatches, make_loader
from mtl.losses import make_weighting
from mtl.model import create_model, init_age_head
from mtl.train import build_optimizer, build_scheduler, train_one_epoch
from mtl.transforms import train_augmentation


def suite_loop(cfg, data, rows) -> float:
    model, _ = create_model(cfg.model)
    init_age_head(model, torch.tensor(data.frame["age"].to_numpy(), dtype=torch.float32))
    model = model.to(memory_format=torch.channels_last)
    weighting = make_weighting(cfg.loss.weighting)
    optimizer = build_optimizer(model, weighting, cfg.train.lr, cfg.train.weight_decay)
    scheduler = build_scheduler(optimizer, schedule="cosine", lr=cfg.train.lr, total_steps=10_000, warmup_steps=10)
    dataset = FaceBatches(data.images, rows["cache_index"].to_numpy(), rows["age"].to_numpy(),
                          rows["gender"].to_numpy(), augment=train_augmentation(cfg.train.augment, seed=0))
    loader = make_loader(dataset, cfg.train.batch_size, shuffle=True, seed=0)
    warm = make_loader(FaceBatches(data.images, rows["cache_index"].to_numpy()[: 3 * cfg.train.batch_size],
                                   rows["age"].to_numpy()[: 3 * cfg.train.batch_size],
                                   rows["gender"].to_numpy()[: 3 * cfg.train.batch_size]),
                       cfg.train.batch_size, shuffle=True)
    train_one_epoch(model, warm, weighting, optimizer, scheduler, cfg, torch.device("cpu"), 0)
    start = time.perf_counter()
    train_one_epoch(model, loader, weighting, optimizer, scheduler, cfg, torch.device("cpu"), 1)
    return len(loader) * cfg.train.batch_size / (time.perf_counter() - start)


def bare_loop(cfg, data, rows) -> float:
    """What a plain script does: timm trunk + two linear heads, MSE + BCE, AdamW, no augmentation."""
    trunk = timm.create_model(cfg.model.backbone, pretrained=False, num_classes=0)
    heads = nn.Linear(trunk.num_features, 2)
    model = nn.Sequential(trunk, heads).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    idx = rows["cache_index"].to_numpy()
    age = torch.tensor(rows["age"].to_numpy(), dtype=torch.float32)
    gender = torch.tensor(rows["gender"].to_numpy(), dtype=torch.float32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    bs = cfg.train.batch_size

    def step(batch_rows):
        pixels = torch.from_numpy(np.ascontiguousarray(data.images[np.sort(idx[batch_rows])]))
        x = pixels.permute(0, 3, 1, 2).float().div(255).sub(mean).div(std)
        out = model(x.contiguous(memory_format=torch.channels_last))
        loss = F.mse_loss(out[:, 0], age[batch_rows] / 10) + F.binary_cross_entropy_with_logits(out[:, 1], gender[batch_rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    order = np.random.default_rng(0).permutation(len(rows))
    for b in range(3):
        step(order[b * bs : (b + 1) * bs])
    n_batches = len(rows) // bs
    start = time.perf_counter()
    for b in range(n_batches):
        step(order[b * bs : (b + 1) * bs])
    return n_batches * bs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", default="experiments/default.yaml")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config(args.config, {"data.path": args.data})
    torch.manual_seed(0)
    data = prepare_data(cfg.data, cfg.seed)
    rows = data.split("train").head(args.batches * cfg.train.batch_size)
    suite, bare = [], []
    for r in range(args.rounds):  # interleaved, so drift on the machine hits both alike
        suite.append(suite_loop(cfg, data, rows))
        bare.append(bare_loop(cfg, data, rows))
        print(f"round {r + 1}: suite {suite[-1]:.1f} img/s, bare {bare[-1]:.1f} img/s")
    s, b = float(np.median(suite)), float(np.median(bare))
    print(f"{cfg.model.backbone} {cfg.data.image_size}px batch {cfg.train.batch_size}, torch threads "
          f"{torch.get_num_threads()}: suite {s:.1f} img/s, bare {b:.1f} img/s (medians of {args.rounds}), "
          f"ratio {s / b:.3f}")


if __name__ == "__main__":
    main()
