"""The EDA finds flaws injected into a temp copy of real images, and its report holds the numbers."""

import shutil

import mlflow

from reports.eda import build_report, main


def test_eda_finds_injected_flaws(small_copy, tmp_path):
    files = sorted(p.name for p in small_copy.iterdir())
    (small_copy / "notanumber_0_0_20170101.jpg.chip.jpg").write_bytes((small_copy / files[0]).read_bytes())
    (small_copy / "30_1_2_20990101000000000.jpg.chip.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    age, gender, race, _ = files[1].split("_", 3)
    shutil.copy(small_copy / files[1], small_copy / f"{int(age) + 30}_{gender}_{race}_20990102000000000.jpg.chip.jpg")
    html, metrics, tables = build_report(str(small_copy), str(tmp_path / "cache"), workers=1)
    assert metrics["dq_bad_name"] == 1
    assert metrics["dq_unreadable"] == 1
    assert metrics["dq_conflicting_duplicate"] == 2
    quality = tables["data_quality"].set_index("file")
    assert quality.loc["notanumber_0_0_20170101.jpg.chip.jpg", "problem"] == "bad_name"
    assert quality.loc["30_1_2_20990101000000000.jpg.chip.jpg", "problem"] == "unreadable"
    assert quality.loc[files[1], "problem"] == "conflicting_duplicate"
    assert metrics["eda_usable"] == len(files) - 1  # files[1] and its relabelled copy are both dropped
    findings = " ".join(tables["findings"]["finding"])
    assert "1 unparsable names, 1 unreadable files" in findings
    assert "<img src='data:image/png;base64," in html  # self-contained, renders offline
    assert f"{len(files) + 3} files" in html


def test_eda_command_logs_a_run(small_copy, tmp_path, mlflow_store):
    run_id = main(["--data", str(small_copy), "--cache-dir", str(tmp_path / "cache")])
    client = mlflow.MlflowClient(mlflow_store)
    paths = {a.path for a in client.list_artifacts(run_id, "eda")}
    assert {"eda/report.html", "eda/counts_by_race.csv", "eda/findings.csv"} <= paths
    assert client.get_run(run_id).data.metrics["dq_files"] == 60
