"""The default configuration end to end on the real data: wall time, test metrics, peak memory.

    python -m bench.default_run --data ../shared/data/UTKFace [--config experiments/default.yaml]

Uses a fresh MLflow store in a temp folder (printed) and a fresh image cache unless --cache-dir.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import mlflow

from mtl.config import load_config, parse_overrides
from mtl.train import configure_logging, run


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", default="experiments/default.yaml")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()
    configure_logging()
    work = Path(tempfile.mkdtemp(prefix="utkface-bench-"))
    overrides = {"data.path": args.data, "data.cache_dir": args.cache_dir or str(work / "cache"), **parse_overrides(args.set)}
    cfg = load_config(args.config, overrides)
    os.chdir(work)
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    start = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - start
    m = result.metrics
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"store: {work}")
    print(f"wall time (data prep + cache + training + evaluation + logging): {wall / 60:.2f} min; "
          f"training {m['train_minutes']:.2f} min; epochs run {len(result.history)}, best {result.best_epoch}")
    print(f"test: age MAE {m['test_age_mae']:.3f}, RMSE {m['test_age_rmse']:.3f}, CS@5 {m['test_age_cs5']:.3f}, "
          f"MAE 21-60 {m['test_age_mae_21_60']:.3f}; gender accuracy {m['test_gender_accuracy']:.4f}, "
          f"F1 {m['test_gender_f1']:.4f}, ROC AUC {m['test_gender_roc_auc']:.4f}; "
          f"80% interval coverage {m.get('test_age_interval_coverage', float('nan')):.3f}")
    print(f"baseline: age MAE {m['test_baseline_age_mae']:.3f}, gender accuracy {m['test_baseline_gender_accuracy']:.4f}")
    extra = result.extra.get("analysis", {})
    if extra:
        print(f"LIME: {extra.get('lime_seconds_per_explanation', float('nan')):.2f} s per explanation; deletion test "
              f"top/random output change: gender {extra.get('lime_gender_deletion_ratio', float('nan')):.2f}x, "
              f"age {extra.get('lime_age_deletion_ratio', float('nan')):.2f}x")
        print("fairness: " + ", ".join(f"{k} {v:.3f}" for k, v in extra.items() if k.startswith("fair_")
                                       and not k.endswith(("_ci_low", "_ci_high"))))
    print(f"run id: {result.run_id}")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB; image cache {result.data.cache_path}: "
          f"{_dir_mb(result.data.cache_path):.1f} MB for {result.data.images.shape[0]} images at {cfg.data.image_size}px")


if __name__ == "__main__":
    main()
