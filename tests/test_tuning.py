"""Tiny real studies (a few hundred real images, 32 px, 3 epochs): MLflow runs and states, pruning,
a failing trial, resume after kill -9, two workers on one storage, PostgreSQL, registry aliases."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from conftest import REPO
from optuna.trial import TrialState

from tuning.registry import decide
from tuning.space import load_space
from tuning.study import (
    Objective,
    StudySettings,
    make_pruner,
    open_study,
    pruning_savings,
    run_study,
)

pytestmark = pytest.mark.slow

GOOD = {"backbone": "efficientnet_lite0", "loss_weighting": "uncertainty", "age_formulation": "ordinal",
        "bin_width": 5, "lr": 0.002}


def _settings(utkface_dir, tmp_path, tiny_space, **kw) -> StudySettings:
    values = dict(data=str(utkface_dir), study_name="tiny", storage=str(tmp_path / "journal.log"),
                  search_space=str(tiny_space), n_trials=4, subset=600, image_size=48, pruner_warmup=1,
                  cache_dir=str(tmp_path / "cache"), experiment="tiny-study")
    values.update(kw)
    return StudySettings(**values)


def _report(study: optuna.Study, values: list[float]) -> bool:
    """Ask for a trial, report one value per epoch, return whether the pruner stops it (no training)."""
    trial = study.ask()
    for step, value in enumerate(values, start=1):
        trial.report(value, step)
        if trial.should_prune():
            return True
    return False


def test_successive_halving_prunes_from_the_first_trial_on_and_keeps_the_best():
    study = optuna.create_study(pruner=make_pruner("sha", warmup=2))
    assert not _report(study, [9.0, 8.0, 7.0, 6.0])  # alone at every rung: goes on (and stays RUNNING)
    assert _report(study, [9.5, 8.5])  # worse than the running first trial at epoch 2: pruned
    assert not _report(study, [9.0, 7.5, 6.5, 5.0])  # best at epochs 2 and 4: goes on
    assert _report(study, [9.0, 7.9, 7.0, 6.5])  # 2nd of 4 at epoch 2 (top half), 3rd of 3 at epoch 4
    with pytest.raises(ValueError, match="unknown pruner"):
        make_pruner("asha")


def test_pruning_savings_count_the_epochs_pruned_trials_did_not_run():
    trials = [optuna.trial.create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                                        user_attrs={"epochs_planned": planned, "epochs_run": ran})
              for state, planned, ran in [(TrialState.COMPLETE, 12, 12), (TrialState.PRUNED, 8, 2),
                                          (TrialState.FAIL, 8, 3), (TrialState.COMPLETE, 12, 9)]]
    out = pruning_savings(trials)  # the failed trial and the one stopped by the time budget saved nothing
    assert out == {"trial_epochs_run": 26.0, "trial_epochs_without_pruning": 32.0, "pruning_saved_epochs": 6.0,
                   "pruning_saved_fraction": 6 / 32}


def _children(client, parent_id):
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent_id}'")


def test_study_runs_trials_as_child_runs_with_states_pruning_and_a_failure(utkface_dir, tmp_path, tiny_space,
                                                                          mlflow_store):
    # median pruner after 2 completed trials: the two good ones complete, the hopeless one is pruned
    settings = _settings(utkface_dir, tmp_path, tiny_space, n_trials=4, pruner="median", pruner_startup=2)
    study = open_study(settings)
    study.enqueue_trial(GOOD)
    study.enqueue_trial({**GOOD, "lr": 0.003})
    study.enqueue_trial({**GOOD, "lr": 1e12})  # diverges: NaN loss, the trial fails and the study goes on
    study.enqueue_trial({**GOOD, "lr": 1e-7})  # learns nothing: pruned against the two good ones
    out = run_study(settings)
    client = mlflow.MlflowClient(mlflow_store)
    study = open_study(settings)
    states = {t.number: t.state for t in study.trials}
    assert states[2] == TrialState.FAIL
    assert states[3] == TrialState.PRUNED
    assert sum(s == TrialState.COMPLETE for s in states.values()) >= 2
    assert out["trials_fail"] >= 1 and out["trials_pruned"] >= 1
    assert out["pruning_saved_epochs"] >= 1  # the pruned trial stopped before its 3 epochs
    children = {int(r.data.tags["optuna.trial_number"]): r for r in _children(client, out["parent_run_id"])}
    assert set(children) == set(states)
    assert children[2].info.status == "FAILED" and children[2].data.tags["optuna.state"] == "FAIL"
    assert "error.txt" in {a.path for a in client.list_artifacts(children[2].info.run_id)}
    assert children[3].info.status == "KILLED" and children[3].data.tags["optuna.state"] == "PRUNED"
    assert len(client.get_metric_history(children[3].info.run_id, "val_age_mae")) >= 1  # its curve stays visible
    assert children[0].info.status == "FINISHED" and children[0].info.run_name.startswith("t000-efficientnet_lite0")
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(out["parent_run_id"], "study")}
    assert "study/optimization_history.png" in artifacts
    assert "trials.csv" in {a.path for a in client.list_artifacts(out["parent_run_id"])}
    # the best trial gets the full LIME panel: one face per race x gender group and more
    best_run = parent.data.tags["best_run_id"]
    panel = {a.path for a in client.list_artifacts(best_run, "lime_full")}
    assert "lime_full/panel.csv" in panel and len([p for p in panel if p.endswith(".png")]) >= 10
    assert "lime_full_gender_deletion_ratio" in client.get_run(best_run).data.metrics
    assert parent.data.metrics["study_minutes"] > 0
    # the best trial is registered; the first version becomes champion
    version = client.get_model_version_by_alias("utkface-mtl", "champion")
    assert version.tags["study"] == "tiny" and version.tags["trial"] == parent.data.tags["best_trial"]
    # running the finished study again registers nothing new
    again_out = run_study(settings)
    assert again_out["registered_before"] == version.version and "decision" not in again_out
    assert len(client.search_model_versions("name='utkface-mtl'")) == 1
    # the same model registered again is not better than itself: it becomes challenger
    again = mlflow.register_model(f"runs:/{version.run_id}/model", "utkface-mtl").version
    decision = decide(client, "utkface-mtl", again)
    assert decision.alias == "challenger" and ">=" in decision.reason


def test_resume_after_kill_loses_and_repeats_nothing(utkface_dir, tmp_path, tiny_space, mlflow_store):
    settings = _settings(utkface_dir, tmp_path, tiny_space, n_trials=3, register_name="")
    args = [sys.executable, "-m", "tuning.study", "--data", settings.data, "--study-name", "resumable",
            "--storage", settings.storage, "--search-space", settings.search_space, "--n-trials", "3",
            "--subset", "300", "--image-size", "32", "--pruner", "none", "--register-name", "",
            "--experiment", settings.experiment]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    study_settings = StudySettings(**{**settings.__dict__, "study_name": "resumable", "pruner": "none"})
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until trial 1 is running, after trial 0 completed
        time.sleep(1)
        trials = open_study(study_settings).trials
        if any(t.number == 1 and t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs for t in trials):
            break
    else:
        proc.kill()
        pytest.fail("the study never reached its second trial")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(args, cwd=tmp_path, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    trials = open_study(study_settings).trials
    numbers = [t.number for t in trials]
    assert numbers == sorted(set(numbers))  # no duplicate trial numbers
    assert trials[0].state == TrialState.COMPLETE  # finished before the kill, kept
    assert trials[1].state == TrialState.FAIL  # interrupted: marked failed, not re-run under its number
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    client = mlflow.MlflowClient(mlflow_store)
    killed_run = client.get_run(trials[1].user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "FAILED" and killed_run.data.tags["optuna.state"] == "FAIL"
    assert all(client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
               for t in trials if t.state == TrialState.COMPLETE)


def test_two_workers_share_one_storage(utkface_dir, tmp_path, tiny_space, mlflow_store):
    settings = _settings(utkface_dir, tmp_path, tiny_space, study_name="parallel", n_trials=4, n_workers=2,
                         pruner="none", register_name="")
    out = run_study(settings)
    trials = open_study(settings).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # really two processes
    children = _children(mlflow.MlflowClient(mlflow_store), out["parent_run_id"])
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == sorted(numbers)


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres_url(tmp_path):
    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found; .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL server binaries not installed")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # initdb refuses to run as root: run the server as the package's postgres user, in a folder it
    # can reach (pytest's own temp folders are private to root)
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="utkface-pg-")) / "data"
    data.mkdir()
    if run_as:
        shutil.chown(data, "postgres")
        os.chmod(data.parent, 0o755)
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(data.parent, ignore_errors=True)


def test_postgresql_storage(utkface_dir, tmp_path, tiny_space, mlflow_store, postgres_url):
    settings = _settings(utkface_dir, tmp_path, tiny_space, study_name="pg", storage=postgres_url, n_trials=2,
                         pruner="none", register_name="")
    run_study(settings)
    loaded = optuna.load_study(study_name="pg", storage=postgres_url)
    assert [t.state for t in loaded.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert all("mlflow_run_id" in t.user_attrs for t in loaded.trials)


def test_budget_bounds_every_trial_and_starts_none_it_cannot_finish(utkface_dir, tmp_path, tiny_space, mlflow_store):
    settings = _settings(utkface_dir, tmp_path, tiny_space, study_name="budget", deadline=time.time() + 600,
                         finish_minutes=2.5)
    objective = Objective(settings, load_space(tiny_space), "parent", "split.csv")
    assert 7.4 < objective.minutes_left() <= 7.5  # trials stop training in time for the finish
    assert Objective(_settings(utkface_dir, tmp_path, tiny_space), {}, "p", "s").minutes_left() is None
    # 4 minutes are less than finish (2.5) + the shortest useful trial (3): the study starts no trial
    out = run_study(_settings(utkface_dir, tmp_path, tiny_space, study_name="spent", timeout=240))
    assert out["trials_complete"] == 0 and out["trial_epochs_run"] == 0 and "decision" not in out
    assert mlflow.MlflowClient(mlflow_store).get_run(out["parent_run_id"]).info.status == "FINISHED"
