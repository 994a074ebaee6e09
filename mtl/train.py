"""Training and evaluation of one multi-task model as one MLflow run; ``python -m mtl.train``."""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import math
import os
import random
import time
import traceback
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
import torch
from timm.utils import ModelEmaV3
from torch import nn
from tqdm.auto import tqdm

from mtl.config import RunConfig, load_config, parse_overrides
from mtl.data import PreparedData, prepare_data
from mtl.dataset import FaceBatches, balancing_weights, make_loader, to_model_input
from mtl.evaluate import autocast, forward_frame, predict_frame
from mtl.losses import age_loss, gender_loss, make_weighting
from mtl.metrics import baseline_metrics, composite_objective, evaluate_predictions
from mtl.model import MultiTaskNet, create_model, init_age_head
from mtl.transforms import train_augmentation
from mtl.weights import WeightsInfo

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run produced; ``metrics`` are the test metrics (prefixed ``test_``)."""

    run_id: str | None
    model: MultiTaskNet
    history: pd.DataFrame
    metrics: dict[str, float]
    test_predictions: pd.DataFrame
    data: PreparedData
    weights: WeightsInfo
    best_epoch: int
    extra: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def build_optimizer(model: nn.Module, weighting: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms, CORAL biases or the task log-variances."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = [p for p in weighting.parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(optimizer: torch.optim.Optimizer, *, schedule: str, lr: float, total_steps: int,
                    warmup_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup then cosine decay, or one-cycle, stepped once per batch."""
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 1),
                                                   pct_start=max(warmup_steps / max(total_steps, 1), 0.05))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * 0.99 + 0.01

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EarlyStopping:
    """Tracks the best (lowest) validation objective and keeps a copy of the best weights."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_epoch, self.best_state, self.bad_epochs = patience, math.inf, -1, None, 0

    def update(self, value: float, epoch: int, model: nn.Module) -> bool:
        """Record this epoch; return True when training should stop."""
        if value < self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return self.patience > 0 and self.bad_epochs >= self.patience


def out_of_time(started: float, epoch_seconds: float, max_minutes: float | None) -> bool:
    """Whether one more epoch as long as the last one would end past ``max_minutes`` after ``started``."""
    return bool(max_minutes) and time.perf_counter() - started + epoch_seconds > max_minutes * 60


def train_one_epoch(model, loader, weighting, optimizer, scheduler, cfg: RunConfig, device, epoch: int,
                    ema: ModelEmaV3 | None = None) -> dict:
    """One pass over the training batches (updating ``ema`` after each step when given); returns mean
    losses and running train metrics."""
    model.train()
    sums = {"loss": 0.0, "age_loss": 0.0, "gender_loss": 0.0, "abs_err": 0.0, "correct": 0.0}
    n = 0
    progress = tqdm(loader, desc=f"epoch {epoch}", leave=False, unit="batch")
    for step, (pixels, age, gender) in enumerate(progress):
        x = to_model_input(pixels, device, cfg.train.channels_last)
        age, gender = age.to(device), gender.to(device)
        with autocast(device):
            out = model(x)
        task_losses = torch.stack([
            age_loss(out, age, formulation=cfg.model.age_formulation, bins=model.bins,
                     regression_loss=cfg.loss.regression_loss),
            gender_loss(out, gender),
        ])
        loss = weighting(task_losses)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss ({loss.item()}) at epoch {epoch}, batch {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update(model, step=scheduler.last_epoch)
        batch = len(age)
        n += batch
        sums["loss"] += loss.item() * batch
        sums["age_loss"] += task_losses[0].item() * batch
        sums["gender_loss"] += task_losses[1].item() * batch
        sums["abs_err"] += (out["age"].detach().float() - age).abs().sum().item()
        sums["correct"] += ((out["gender_logit"].detach() > 0).float() == gender).sum().item()
        if step % 10 == 0:
            progress.set_postfix(loss=f"{sums['loss'] / n:.3f}", mae=f"{sums['abs_err'] / n:.2f}")
    return {"train_loss": sums["loss"] / n, "train_age_loss": sums["age_loss"] / n,
            "train_gender_loss": sums["gender_loss"] / n, "train_age_mae": sums["abs_err"] / n,
            "train_gender_accuracy": sums["correct"] / n}


def validation_metrics(model, weighting, data: PreparedData, val: pd.DataFrame, cfg: RunConfig, device) -> dict:
    """Validation losses (with the current task weights) and metrics, prefixed ``val_``."""
    out = forward_frame(model, data.images, val, device=device, channels_last=cfg.train.channels_last)
    age = torch.tensor(val["age"].to_numpy(), dtype=torch.float32)
    gender = torch.tensor(val["gender"].to_numpy(), dtype=torch.float32)
    with torch.inference_mode():
        losses = torch.stack([
            age_loss(out, age, formulation=cfg.model.age_formulation, bins=model.bins,
                     regression_loss=cfg.loss.regression_loss),
            gender_loss(out, gender),
        ])
        total = weighting(losses.to(device))
    preds = val.assign(pred_age=out["age"].numpy(), female_probability=torch.sigmoid(out["gender_logit"]).numpy())
    metrics = evaluate_predictions(preds)
    return {"val_loss": float(total), "val_age_loss": float(losses[0]), "val_gender_loss": float(losses[1]),
            **{f"val_{k}": v for k, v in metrics.items()}}


def fit(cfg: RunConfig, data: PreparedData, *, epoch_callback=None) -> TrainResult:
    """Train with early stopping; ``epoch_callback(epoch, metrics)`` may raise to stop (pruning)."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    if len(train) < cfg.train.batch_size:
        raise ValueError(f"only {len(train)} training images for train.batch_size={cfg.train.batch_size}")
    model, weights_info = create_model(cfg.model)
    init_age_head(model, torch.tensor(train["age"].to_numpy(), dtype=torch.float32))
    model = model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    weighting = make_weighting(cfg.loss.weighting, age_weight=cfg.loss.age_weight,
                               gender_weight=cfg.loss.gender_weight).to(device)
    optimizer = build_optimizer(model, weighting, cfg.train.lr, cfg.train.weight_decay)
    augment = train_augmentation(cfg.train.augment, seed=cfg.seed)
    train_set = FaceBatches(data.images, train["cache_index"].to_numpy(), train["age"].to_numpy(),
                            train["gender"].to_numpy(), augment=augment)
    loader = make_loader(train_set, cfg.train.batch_size, shuffle=True, seed=cfg.seed, workers=cfg.train.loader_workers,
                         weights=balancing_weights(train, cfg.train.balance))
    steps_per_epoch = len(loader)
    scheduler = build_scheduler(optimizer, schedule=cfg.train.schedule, lr=cfg.train.lr,
                                total_steps=steps_per_epoch * cfg.train.epochs,
                                warmup_steps=int(cfg.train.warmup_epochs * steps_per_epoch))
    stopper = EarlyStopping(cfg.train.patience)
    # warmup: the average starts close to the live weights and lengthens its horizon up to ema_decay
    ema = ModelEmaV3(model, decay=cfg.train.ema_decay, use_warmup=True) if cfg.train.ema_decay else None
    evaluated = ema.module if ema is not None else model
    history, started, stop_reason = [], time.perf_counter(), ""
    for epoch in range(1, cfg.train.epochs + 1):
        loader.sampler.set_epoch(epoch)
        epoch_start = time.perf_counter()
        row = {"epoch": epoch, **train_one_epoch(model, loader, weighting, optimizer, scheduler, cfg, device, epoch, ema)}
        row["train_images_per_s"] = len(loader) * cfg.train.batch_size / (time.perf_counter() - epoch_start)
        row.update(validation_metrics(evaluated, weighting, data, val, cfg, device) if len(val) else {})
        row["lr"] = scheduler.get_last_lr()[0]
        row.update({f"task_weight_{k}": v for k, v in weighting.task_weights().items()})
        row["epoch_seconds"] = time.perf_counter() - epoch_start
        history.append(row)
        if mlflow.active_run():
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        log.info("epoch %d/%d: train loss %.3f, val age MAE %.3f, val gender acc %.4f, task weights %s, %.0f s",
                 epoch, cfg.train.epochs, row["train_loss"], row.get("val_age_mae", float("nan")),
                 row.get("val_gender_accuracy", float("nan")),
                 {k: round(v, 3) for k, v in weighting.task_weights().items()}, row["epoch_seconds"])
        objective = row.get("val_objective", row["train_age_mae"])
        if epoch_callback is not None:
            epoch_callback(epoch, row)
        stop = stopper.update(objective, epoch, evaluated)
        over_budget = out_of_time(started, row["epoch_seconds"], cfg.train.max_minutes)
        if stop or over_budget:
            stop_reason = "early stopping" if stop else "time budget"
            log.info("stopping after epoch %d (%s)", epoch, stop_reason)
            break
    model.load_state_dict(stopper.best_state)
    model.eval()
    test_preds = predict_frame(model, data.images, test, device=device, channels_last=cfg.train.channels_last)
    metrics = {f"test_{k}": v for k, v in evaluate_predictions(test_preds).items()}
    metrics.update({f"test_{k}": v for k, v in baseline_metrics(train, test).items()})
    metrics["train_minutes"] = (time.perf_counter() - started) / 60
    metrics["best_epoch"] = stopper.best_epoch
    return TrainResult(None, model, pd.DataFrame(history), metrics, test_preds, data, weights_info,
                       stopper.best_epoch, extra={"stop_reason": stop_reason or "all epochs"})


def run(cfg: RunConfig, *, nested: bool = False, epoch_callback=None, tags: dict[str, str] | None = None,
        on_start=None) -> TrainResult:
    """Prepare data, train, evaluate and log everything to one MLflow run; returns the result.

    ``tags`` are set on the run at its start (``mlflow.parentRunId`` nests it under a study run from
    another process); ``on_start(run_id)`` is called once the run exists. An exception is logged to
    the run (``error.txt`` and the ``error`` tag) before it propagates; MLflow marks the run FAILED.
    """
    from mtl import tracking  # local import: keeps ``python -m mtl.train --help`` fast

    if not os.environ.get("MLFLOW_RUN_ID") and not nested:
        mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=cfg.run_name, nested=nested, tags=tags) as active:
        if on_start is not None:
            on_start(active.info.run_id)
        try:
            mlflow.log_params(cfg.flat())
            data = prepare_data(cfg.data, cfg.seed)
            tracking.log_data(data)
            result = fit(cfg, data, epoch_callback=epoch_callback)
            result.run_id = active.info.run_id
            mlflow.set_tags({"weights_source": result.weights.source, "weights_location": result.weights.location,
                             "data_content_key": data.content_key, "test_split_key": test_split_key(data),
                             "torch_device": str(resolve_device(cfg.train.device)),
                             "stop_reason": result.extra["stop_reason"]})
            tracking.log_results(cfg, result)
        except Exception as exc:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.log_text(traceback.format_exc(), "error.txt")
            raise
    return result


def test_split_key(data: PreparedData) -> str:
    """Hash of the test split's file names: runs with equal keys were scored on the same images."""
    names = "\n".join(sorted(data.split("test")["file"]))
    return hashlib.blake2b(names.encode(), digest_size=8).hexdigest()


def configure_logging() -> None:
    """Log this package's INFO messages to stderr (MLflow keeps its own logging setup)."""
    logger = logging.getLogger("mtl")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtl.train", description=__doc__)
    parser.add_argument("--data", required=True, help="UTKFace folder or the Kaggle utkface-new zip")
    parser.add_argument("--config", default="experiments/default.yaml", help="run configuration YAML")
    parser.add_argument("--seed", type=lambda s: int(float(s)), default=None, help="random seed (overrides the config)")
    parser.add_argument("--split-manifest", default=None, help="reuse a saved split manifest CSV")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config fields, e.g. train.epochs=3 model.backbone=resnet18")
    return parser


def main(argv: list[str] | None = None) -> TrainResult:
    configure_logging()
    args = build_parser().parse_args(argv)
    overrides = parse_overrides(args.set)
    overrides["data.path"] = args.data
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.split_manifest:
        overrides["data.split_manifest"] = args.split_manifest
    cfg = load_config(args.config, overrides)
    result = run(cfg)
    print(tracking_summary(result))
    return result


def tracking_summary(result: TrainResult) -> str:
    m = result.metrics
    return (f"run {result.run_id}: test age MAE {m['test_age_mae']:.3f} (baseline {m['test_baseline_age_mae']:.2f}), "
            f"gender accuracy {m['test_gender_accuracy']:.4f} (baseline {m['test_baseline_gender_accuracy']:.4f}), "
            f"objective {composite_objective(m['test_age_mae'], m['test_gender_accuracy']):.3f}, "
            f"{m['train_minutes']:.1f} min, best epoch {result.best_epoch}")


if __name__ == "__main__":
    main()
