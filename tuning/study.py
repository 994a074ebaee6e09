"""Optuna study over backbone, loss weighting and age formulation; every trial a nested MLflow run.

    python -m tuning.study --data ../shared/data/UTKFace [--n-trials 6] [--timeout 1800] [--n-workers 2]
        [--storage sqlite:///optuna.db | postgresql://... | journal file path] [--study-name NAME]
        [--search-space experiments/search_space.yaml] [--epochs 6] [--subset 4000] [--multi-objective]

Objective (minimised): the validation composite ``age_mae + 20 * (1 - gender_accuracy)``; with
``--multi-objective``: (validation age MAE, validation gender error), Pareto front logged. Pruning:
successive halving on the per-epoch validation objective by default (single-objective only).
``--timeout`` is a budget for the whole invocation: trials stop training in time for the summary and
the registry to finish within it. A study interrupted (Ctrl-C, kill -9) resumes under the same name:
trials it left RUNNING are marked FAIL in Optuna and in MLflow, and the study runs until
``n_trials`` trials have finished (complete or pruned) or the budget is spent.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import os
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import optuna
from optuna.trial import TrialState

from mtl.config import load_config
from mtl.data import prepare_data
from mtl.split import manifest
from mtl.train import run
from tuning.registry import register_and_promote
from tuning.space import default_params, load_space, run_name, suggest

STUDY_TAG = "utkface.study"
log = logging.getLogger(__name__)


@dataclass
class StudySettings:
    data: str
    study_name: str = "utkface-mtl-study"
    storage: str = "optuna-journal.log"
    search_space: str = "experiments/search_space.yaml"
    n_trials: int = 6
    timeout: float | None = None  # study budget in seconds for this invocation, see ``deadline``
    deadline: float | None = None  # wall-clock end (time.time()); set from ``timeout`` when the study starts
    finish_minutes: float = 2.5  # kept free at the end for the last trial's evaluation and the registry
    min_trial_minutes: float = 3.0  # no trial starts with less time left than this
    epochs: int | None = None  # overrides the space's epoch budget
    subset: int | None = None
    image_size: int | None = None
    n_workers: int = 1
    multi_objective: bool = False
    pruner: str = "sha"  # sha (successive halving) | median | hyperband | none
    pruner_warmup: int = 2  # epochs before a trial may be pruned (sha: its first rung)
    pruner_startup: int = 1  # median only: completed trials before it may prune
    register_name: str | None = "utkface-mtl"
    champion_lime: bool = True  # the best trial gets the full LIME panel (trials log the small one)
    experiment: str = "utkface-mtl-tuning"
    cache_dir: str = "~/.cache/utkface-mtl"
    seed: int = 0


def make_storage(url: str) -> optuna.storages.BaseStorage | str:
    """An RDB URL (sqlite://, postgresql://) as is; anything else is a journal file (multi-process safe)."""
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def make_pruner(name: str, warmup: int = 2, startup: int = 1) -> optuna.pruners.BasePruner:
    """``sha``: successive halving with rungs at epochs ``warmup * 2**k``; a trial reaching a rung goes
    on only if it is in the best half of all trials that reached it (the best one when fewer than 4),
    running ones included, so it prunes from the start and between parallel workers. ``median``
    needs ``startup`` completed trials first; ``hyperband`` runs several successive-halving brackets."""
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup, reduction_factor=2)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; use sha, median, hyperband or none")


def open_study(s: StudySettings) -> optuna.Study:
    kwargs = {"directions": ["minimize", "minimize"]} if s.multi_objective else {"direction": "minimize"}
    return optuna.create_study(study_name=s.study_name, storage=make_storage(s.storage), load_if_exists=True,
                               sampler=optuna.samplers.TPESampler(seed=s.seed, multivariate=True, group=True),
                               pruner=make_pruner(s.pruner, s.pruner_warmup, s.pruner_startup) if not s.multi_objective else optuna.pruners.NopPruner(),
                               **kwargs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_interrupted_trials(study: optuna.Study, client: mlflow.MlflowClient) -> list[int]:
    """Trials RUNNING in the storage whose worker process on this host is gone: FAIL in Optuna and MLflow."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != socket.gethostname() or _pid_alive(int(attrs.get("pid", -1))):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        run_id = attrs.get("mlflow_run_id")
        if run_id:
            client.set_tag(run_id, "optuna.state", "FAIL")
            client.set_tag(run_id, "error", "interrupted: the worker process ended while the trial was running")
            client.set_terminated(run_id, "FAILED")
        failed.append(trial.number)
    return failed


def parent_run(s: StudySettings, client: mlflow.MlflowClient) -> str:
    """The study's MLflow run: the run ``mlflow run`` started, one found by study name (resume), or new."""
    launched = os.environ.pop("MLFLOW_RUN_ID", None)  # child runs must not resume the launcher's run
    if launched:
        s.experiment = client.get_experiment(client.get_run(launched).info.experiment_id).name
        client.set_tag(launched, STUDY_TAG, s.study_name)
        client.set_tag(launched, "optuna.study_name", s.study_name)
        client.update_run(launched, name=f"study-{s.study_name}")
        return launched
    experiment = mlflow.set_experiment(s.experiment)
    found = client.search_runs([experiment.experiment_id], f"tags.`{STUDY_TAG}` = '{s.study_name}'",
                               order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(experiment.experiment_id, run_name=f"study-{s.study_name}",
                            tags={STUDY_TAG: s.study_name, "optuna.study_name": s.study_name})
    for key, value in asdict(s).items():
        client.log_param(run.info.run_id, f"study.{key}", value)
    return run.info.run_id


def trial_threads(n_workers: int) -> int:
    """Torch threads per trial: the machine's cores shared by the workers (1 thread per worker on 2
    cores, where two 1-thread workers run about 1.18x the epochs per hour of one 2-thread trial)."""
    return max(1, (os.cpu_count() or 1) // max(n_workers, 1))


class Objective:
    """One trial = one training run, nested under the study run."""

    def __init__(self, s: StudySettings, space: dict, parent_id: str, split_path: str):
        self.s, self.space, self.parent_id, self.split_path = s, space, parent_id, split_path

    def minutes_left(self) -> float | None:
        """Training time a trial may use: up to the deadline, less what finishing the study needs."""
        if self.s.deadline is None:
            return None
        return max((self.s.deadline - time.time()) / 60 - self.s.finish_minutes, 0.1)

    def config(self, trial: optuna.Trial):
        overrides = suggest(trial, self.space)
        overrides.update({"data.path": self.s.data, "data.split_manifest": self.split_path, "seed": self.s.seed,
                          "data.cache_dir": self.s.cache_dir, "train.max_minutes": self.minutes_left(),
                          "train.threads": trial_threads(self.s.n_workers),
                          "run_name": run_name(trial.number, overrides), "experiment": self.s.experiment})
        if self.s.subset:
            overrides["data.subset"] = self.s.subset
        if self.s.epochs:
            overrides["train.epochs"] = self.s.epochs
        if self.s.image_size:
            overrides["data.image_size"] = self.s.image_size
        return load_config(self.space.get("base_config", "experiments/default.yaml"), overrides)

    def __call__(self, trial: optuna.Trial):
        cfg = self.config(trial)
        trial.set_user_attr("epochs_planned", cfg.train.epochs)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        tags = {"mlflow.parentRunId": self.parent_id, "optuna.study_name": self.s.study_name,
                "optuna.trial_number": str(trial.number), "optuna.state": "RUNNING"}
        run_ids: list[str] = []

        def started(run_id: str) -> None:
            run_ids.append(run_id)
            trial.set_user_attr("mlflow_run_id", run_id)

        def report(epoch: int, row: dict) -> None:
            value = row.get("val_objective", math.nan)
            if not math.isfinite(value) or not math.isfinite(row["train_loss"]):
                raise FloatingPointError(f"non-finite validation objective at epoch {epoch}")
            trial.set_user_attr("epochs_run", epoch)
            if not self.s.multi_objective:
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch} (val objective {value:.3f})")

        client = mlflow.MlflowClient()
        try:
            result = run(cfg, epoch_callback=report, tags=tags, on_start=started)  # MLflow marks a raise FAILED
        except optuna.TrialPruned:
            if run_ids:
                client.set_tag(run_ids[0], "optuna.state", "PRUNED")
                client.set_terminated(run_ids[0], "KILLED")
            raise
        except BaseException:
            if run_ids:
                client.set_tag(run_ids[0], "optuna.state", "FAIL")
            raise
        client.set_tag(result.run_id, "optuna.state", "COMPLETE")
        trial.set_user_attr("stop_reason", result.extra["stop_reason"])  # "time budget": cut short, not pruned
        last = result.history.iloc[result.best_epoch - 1]
        trial.set_user_attr("test_objective", result.metrics["test_objective"])
        trial.set_user_attr("test_age_mae", result.metrics["test_age_mae"])
        trial.set_user_attr("test_gender_accuracy", result.metrics["test_gender_accuracy"])
        if self.s.multi_objective:
            return float(last["val_age_mae"]), float(1 - last["val_gender_accuracy"])
        return float(last["val_objective"])


def _worker(settings: dict, parent_id: str, split_path: str, tracking_uri: str) -> None:
    from mtl.train import configure_logging

    configure_logging()  # a spawned process starts without the parent's logging setup
    s = StudySettings(**settings)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(s.experiment)
    optimize(s, parent_id, split_path)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def optimize(s: StudySettings, parent_id: str, split_path: str) -> None:
    study = open_study(s)
    if _finished(study) >= s.n_trials:
        return  # a resumed study that already has its trials
    objective = Objective(s, load_space(s.search_space), parent_id, split_path)
    callbacks = [optuna.study.MaxTrialsCallback(s.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))]
    timeout = None
    if s.deadline is not None:
        timeout = s.deadline - time.time() - 60 * (s.finish_minutes + s.min_trial_minutes)
        if timeout <= 0:
            return  # no time left for a useful trial; Optuna checks ``timeout`` before each new one
    study.optimize(objective, timeout=timeout, callbacks=callbacks, catch=(Exception,), gc_after_trial=True)


def study_split(s: StudySettings, space: dict, parent_id: str, client: mlflow.MlflowClient, folder: Path) -> str:
    """One split manifest for the whole study, kept on the study run, so every trial (also after a
    resume) is scored on the same test images."""
    path = folder / "split_manifest.csv"
    try:
        return client.download_artifacts(parent_id, "data/split_manifest.csv", str(folder))
    except Exception:  # a new study: no manifest logged yet
        pass
    cfg = load_config(space.get("base_config", "experiments/default.yaml"),
                      {"data.path": s.data, "data.subset": s.subset, "seed": s.seed, "data.cache_dir": s.cache_dir})
    manifest(prepare_data(cfg.data, cfg.seed).frame).to_csv(path, index=False)
    client.log_artifact(parent_id, str(path), "data")
    return str(path)


def pruning_savings(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    """Compute pruning saved: epochs all trials ran versus the same trials with the pruned ones run
    to their planned epochs (trials stopped by the time budget or by failure count as run)."""
    def epochs(t, key):
        return int(t.user_attrs.get(key, 0))
    run_epochs = sum(epochs(t, "epochs_run") for t in trials)
    saved = sum(max(epochs(t, "epochs_planned") - epochs(t, "epochs_run"), 0)
                for t in trials if t.state == TrialState.PRUNED)
    return {"trial_epochs_run": float(run_epochs), "trial_epochs_without_pruning": float(run_epochs + saved),
            "pruning_saved_epochs": float(saved),
            "pruning_saved_fraction": saved / (run_epochs + saved) if run_epochs + saved else 0.0}


def summarize(study: optuna.Study, s: StudySettings, parent_id: str, client: mlflow.MlflowClient) -> dict:
    """Trial counts, pruning savings, trials CSV and plots on the study run."""
    from tuning.plots import log_study_plots

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    metrics = {f"trials_{k}": float(v) for k, v in counts.items()}
    metrics["trials_cut_by_budget"] = float(sum(t.user_attrs.get("stop_reason") == "time budget" for t in trials))
    metrics.update(pruning_savings(trials))
    for key, value in metrics.items():
        client.log_metric(parent_id, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        frame = study.trials_dataframe()
        frame.to_csv(Path(tmp) / "trials.csv", index=False)
        client.log_artifact(parent_id, str(Path(tmp) / "trials.csv"))
    log_study_plots(study, parent_id, client, multi_objective=s.multi_objective)
    return metrics


def best_trial(study: optuna.Study, multi_objective: bool) -> optuna.trial.FrozenTrial | None:
    """Single objective: the lowest validation objective. Multi-objective: among the Pareto front,
    the lowest composite ``age_mae + 20 * gender_error`` (the same rule as single-objective)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return None
    if not multi_objective:
        return study.best_trial
    return min(study.best_trials, key=lambda t: t.values[0] + 20 * t.values[1])


def champion_panel(run_id: str, data: str, client: mlflow.MlflowClient, parent_id: str) -> dict[str, float]:
    """The best trial's full LIME panel; a failure is logged on the study run, not raised (the study's
    trials and registration stand)."""
    from mtl.analysis import log_full_lime

    try:
        return log_full_lime(run_id, data_path=data)
    except Exception as exc:  # reported on the study run; the trials and registration stand
        log.exception("full LIME panel for run %s failed", run_id)
        client.set_tag(parent_id, "champion_lime_error", f"{type(exc).__name__}: {exc}"[:5000])
        return {}


def publish_best(best: optuna.trial.FrozenTrial, s: StudySettings, client: mlflow.MlflowClient,
                 parent_id: str) -> dict:
    """Tag the study run with its best trial, register that trial's model and apply the champion rule,
    and log its full LIME panel. A model registered before (a re-run study with the same best trial)
    is not registered again."""
    run_id = best.user_attrs["mlflow_run_id"]
    client.set_tag(parent_id, "best_trial", str(best.number))
    client.set_tag(parent_id, "best_run_id", run_id)
    out: dict = {}
    if s.register_name:
        known = client.search_model_versions(f"name='{s.register_name}' and run_id='{run_id}'")
        if known:
            client.set_tag(parent_id, "registered", f"{s.register_name} v{known[0].version} (registered before)")
            return {"registered_before": known[0].version}
        metrics = {key: f"{best.user_attrs.get(key, float('nan')):.4f}"
                   for key in ("test_objective", "test_age_mae", "test_gender_accuracy")}
        decision = register_and_promote(run_id, name=s.register_name, client=client,
                                        tags={"study": s.study_name, "trial": str(best.number), **metrics})
        client.set_tag(parent_id, "registered", f"{s.register_name} v{decision.version} @{decision.alias}")
        out["decision"] = decision
    if s.champion_lime:
        out["champion_lime"] = champion_panel(run_id, s.data, client, parent_id)
    return out


def run_study(s: StudySettings) -> dict:
    """Run (or resume) the study, summarise it on its MLflow run, register and promote the best model."""
    started = time.time()
    if s.timeout and s.deadline is None:
        s.deadline = started + s.timeout
    client = mlflow.MlflowClient()
    space = load_space(s.search_space)
    parent_id = parent_run(s, client)
    study = open_study(s)
    if not study.trials:
        base = load_config(space.get("base_config", "experiments/default.yaml"))
        if base.model.backbone in space["backbones"]:
            study.enqueue_trial(default_params(space, base))  # start from the default experiment
    interrupted = fail_interrupted_trials(study, client)
    folder = Path(tempfile.mkdtemp(prefix="utkface-study-"))
    split_path = study_split(s, space, parent_id, client, folder)
    status = "FINISHED"
    try:
        if s.n_workers > 1:
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_worker, args=(asdict(s), parent_id, split_path, mlflow.get_tracking_uri()))
                     for _ in range(s.n_workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        else:
            optimize(s, parent_id, split_path)
    except KeyboardInterrupt:
        status = "KILLED"
        fail_interrupted_trials(study, client)
        raise
    finally:
        study = open_study(s)
        out = summarize(study, s, parent_id, client)
        out["interrupted_trials_failed"] = interrupted
        best = best_trial(study, s.multi_objective)
        if best is not None and status == "FINISHED":
            out.update(publish_best(best, s, client, parent_id))
        out["study_minutes"] = (time.time() - started) / 60
        client.log_metric(parent_id, "study_minutes", out["study_minutes"])
        client.set_terminated(parent_id, status)
        shutil.rmtree(folder, ignore_errors=True)  # the split manifest copy; it stays logged on the study run
    out["parent_run_id"] = parent_id
    return out


def _int(text: str) -> int:
    return int(float(text))  # MLproject passes numbers as "6.0"


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1", "yes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tuning.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--study-name", default="utkface-mtl-study")
    p.add_argument("--storage", default="optuna-journal.log", help="journal file path or RDB URL")
    p.add_argument("--search-space", default="experiments/search_space.yaml")
    p.add_argument("--n-trials", type=_int, default=6)
    p.add_argument("--timeout", type=float, default=None,
                   help="study budget in seconds: trials stop in time for the study to finish within it")
    p.add_argument("--finish-minutes", type=float, default=2.5,
                   help="minutes of the budget kept for the last evaluation, the summary and the registry")
    p.add_argument("--min-trial-minutes", type=float, default=3.0,
                   help="no trial starts with less of the budget left than this")
    p.add_argument("--epochs", type=_int, default=None)
    p.add_argument("--subset", type=_int, default=None)
    p.add_argument("--image-size", type=_int, default=None)
    p.add_argument("--n-workers", type=_int, default=1)
    p.add_argument("--multi-objective", nargs="?", const="true", default="false", type=_flag,
                   help="optimise (val age MAE, val gender error) and log the Pareto front")
    p.add_argument("--pruner", default="sha", choices=["sha", "median", "hyperband", "none"])
    p.add_argument("--register-name", default="utkface-mtl")
    p.add_argument("--no-champion-lime", dest="champion_lime", action="store_false",
                   help="skip the best trial's full LIME panel")
    p.add_argument("--experiment", default="utkface-mtl-tuning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pruner-warmup", type=int, default=2, help="epochs before a trial may be pruned")
    p.add_argument("--pruner-startup", type=int, default=1,
                   help="median pruner: completed trials before it may prune")
    return p


def main(argv: list[str] | None = None) -> dict:
    from mtl.train import configure_logging

    configure_logging()
    args = vars(build_parser().parse_args(argv))
    for key in ("timeout", "epochs", "subset", "image_size"):
        if not args[key]:
            args[key] = None  # 0 means "not set"
    out = run_study(StudySettings(**args))
    print({k: v for k, v in out.items()})
    return out


if __name__ == "__main__":
    main()
