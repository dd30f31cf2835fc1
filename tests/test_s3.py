"""``--storage s3://…`` against a real S3 endpoint: moto's standalone server on loopback (tests/s3.py),
reached by every process the way a user's processes reach a bucket (credentials in the environment, the
endpoint in the URI's ``endpoint_override``/``scheme`` query). docs/cluster.md has the same commands for a
real bucket.

1. a PBT smoke run to the bucket: Tune's state, checkpoints, exploit copies and Parquet parts are there,
   and the run is analysed after its local Ray staging folder is deleted;
2. a loopback cluster (head + 2 workers, each with its own temp dir and working folder, no shared run
   folder) runs a PBT population to the bucket; a worker node is SIGKILLed; every iteration is logged once;
3. the driver is SIGKILLed and ``raydaug tune --resume`` continues from the bucket alone, in a fresh
   working folder with a fresh Ray;
4. ``raydaug analyze s3://…`` (best checkpoints fetched from the bucket), ``schedule export``/``replay``;
5. bad storage (unknown bucket, wrong credentials, endpoint down) fails before any trial, one line, exit 2.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("moto")

from raydaug.analysis.load import load  # noqa: E402
from raydaug.checkpoint import load_checkpoint  # noqa: E402
from raydaug.cli import main  # noqa: E402
from raydaug.logging.parquet import join  # noqa: E402
from tests.helpers import TINY  # noqa: E402
from tests.processes import LoopbackCluster, child_env, finish, kill_group, spawn, wait_for  # noqa: E402
from tests.runlogs import (  # noqa: E402
    assert_every_iteration_once,
    durable_iterations,
    every_trial_reached,
    report,
    rows_written_twice,
    trial_events,
)
from tests.s3 import S3_ENV, MotoS3, export_credentials  # noqa: E402

BUCKET = "raydaug-runs"
INTERVAL = 2  # checkpoint_every / eval_every of the kill experiments


@pytest.fixture(scope="session")
def s3():
    """The loopback S3 endpoint with an empty bucket, for the whole session."""
    export_credentials()
    server = MotoS3().start()
    try:
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()


def write_experiment(path: Path, name: str, epochs: int, search: str, scheduler: str = "fifo",
                     options: str = "{}") -> str:
    path.write_text(
        "from ray import tune\nfrom raydaug.experiment import Experiment\n\n\n"
        "def experiment():\n"
        f"    return Experiment(name={name!r}, base={ {**TINY, 'epochs': epochs, 'checkpoint_every': INTERVAL}!r},\n"
        f"                      search_space={search}, scheduler={scheduler!r}, scheduler_options={options},\n"
        "                      cpus_per_trial=1.0, max_failures=2, checkpoints_to_keep=2)\n")
    return str(path)


def short_folder(prefix: str) -> Path:
    """A folder for a Ray temp dir: Ray's unix socket paths must fit in 107 bytes (not pytest's tmp_path)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# ---------------------------------------------------------------------- 1. a PBT smoke run to the bucket
@pytest.fixture(scope="module")
def s3_run(s3, ray_session, tmp_path_factory):
    """`raydaug tune smoke --smoke --storage s3://…` in-process (the session's Ray), from an empty working
    folder; then the run's local Ray staging folder is checked against the bucket and deleted.
    Returns (RUN_DIR URI, its bucket prefix, what was local before the deletion)."""
    import os

    work = tmp_path_factory.mktemp("s3_work")
    storage = s3.uri(f"{BUCKET}/runs")
    here = os.getcwd()
    os.chdir(work)
    try:
        # 1.5 of the session's 2 CPUs per trial: the two trials alternate, so the weak one exploits for certain
        code = main(["tune", "smoke", "--smoke", "--storage", storage, "--cpus-per-trial", "1.5"])
    finally:
        os.chdir(here)
    assert code == 0
    assert list(work.iterdir()) == [], "the run wrote into the driver's working folder"
    session = Path(ray._private.worker._global_node.get_session_dir_path())  # noqa: SLF001 (the test's own Ray)
    staging = list(session.glob("artifacts/*/smoke_smoke"))
    assert staging, f"no local staging folder of the run under {session}"
    local = {str(path.relative_to(folder / "driver_artifacts")) for folder in staging
             for path in (folder / "driver_artifacts").rglob("*") if path.is_file()}
    for folder in staging:
        shutil.rmtree(folder)
    return join(storage, "smoke_smoke"), f"{BUCKET}/runs/smoke_smoke", local


@pytest.mark.slow
def test_a_pbt_run_lives_in_the_bucket_and_nothing_only_on_local_disk(s3, s3_run):
    run_dir, prefix, local = s3_run
    files = s3.files(prefix)
    names = set(files)
    # everything Ray kept locally for the driver was also in the bucket (and is now deleted locally)
    assert local and local <= names, sorted(local - names)
    # Tune's experiment state, every trial's checkpoints, the exploit copies, the Parquet parts
    assert {"tuner.pkl"} <= names and any(n.startswith("experiment_state-") for n in names)
    trials = {n.split("/")[0] for n in names if n.startswith("train_trial_")}
    assert len(trials) == 2
    for trial in trials:
        assert any(n.startswith(f"{trial}/checkpoint_") and n.endswith("/state.pt") for n in names), trial
    copies = [n for n in names if n.startswith("exploit_checkpoints/") and n.endswith("/state.pt")]
    assert copies, "the exploited trial's copy of the donor checkpoint"
    for table in ("metrics", "trials", "pbt_events"):
        assert any(n.startswith(f"parquet/{table}/") and n.endswith(".parquet") for n in names), table
    # read back from the bucket alone
    # smoke --smoke checkpoints every iteration: a restore (an exploit) redoes at most one
    assert_every_iteration_once(run_dir, trials=2, epochs=4, redone_per_restore=1)
    run = load(run_dir)
    assert not run.events.empty and {"start", "restore"} <= set(run.trials["event"])


# ---------------------------------------------------------------------- 4. analysis of the S3 run
@pytest.mark.slow
def test_analyze_export_and_replay_work_on_the_s3_run(s3, s3_run, tmp_path, capsys):
    run_dir, prefix, _ = s3_run
    out = tmp_path / "report"
    assert main(["analyze", run_dir, "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Best checkpoints" in page and (out / "pbt_lineage.png").exists() and (out / "trials.csv").exists()
    best = pd.read_csv(out / "best_checkpoints.csv")
    assert best["checkpoint"].str.startswith(prefix).all(), best["checkpoint"].tolist()  # found in the bucket
    for trial_id in best["trial_id"]:
        copy = out / "checkpoints" / trial_id / "state.pt"
        assert copy.is_file() and not copy.is_symlink()  # fetched from S3, not a link
        assert set(load_checkpoint(copy)["nets"]) >= {"g", "c"}
    assert any(out.glob("samples_*.png")), "G(x, z) grids drawn from the fetched checkpoints"

    assert main(["schedule", "export", run_dir]) == 0
    exported = [n for n in s3.files(prefix) if n.startswith("schedule_") and n.endswith(".json")]
    assert len(exported) == 1, "the schedule is written into the run, in the bucket"
    capsys.readouterr()
    assert main(["schedule", "replay", run_dir, "--name", "replayed"]) == 0
    replay_dir = join(s3.uri(f"{BUCKET}/runs"), "replayed")
    assert f"→ {replay_dir}" in capsys.readouterr().out
    replay = load(replay_dir)
    assert replay.metrics["training_iteration"].tolist() == [1, 2, 3, 4]
    assert "schedule.json" in s3.files(f"{BUCKET}/runs/replayed")


# ---------------------------------------------------------------------- 5. bad storage
@pytest.fixture(scope="module")
def s3_with_auth():
    """A second endpoint that checks credentials: every key is unknown to it."""
    server = MotoS3(auth=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_comparison_finds_the_baselines_stage_in_the_bucket(s3, tmp_path):
    """A run and its follow-up stage RUN_DIR_baselines in the bucket: analyze merges the baselines into the
    comparison as it does for local folders."""
    from tests.test_report_method import HEALTHY, scored, write_trial

    run_dir = s3.uri(f"{BUCKET}/compare/main")
    base, query = run_dir.split("?", 1)
    write_trial(run_dir, "teach_0", {"teacher_weight": 1.0}, scored(0.98, HEALTHY))
    write_trial(f"{base}_baselines?{query}", "light_0", {"aug": "light"}, scored(0.96))
    out = tmp_path / "report"
    assert main(["analyze", run_dir, "--out", str(out)]) == 0
    compared = pd.read_csv(out / "learned_vs_hand_made.csv")
    assert sorted(compared["aug"]) == ["learned", "light"]


@pytest.mark.parametrize("case", ["unknown bucket", "wrong credentials", "endpoint down"])
def test_bad_storage_fails_before_any_trial_on_one_line(s3, s3_with_auth, tmp_path, monkeypatch, capsys, case):
    def trap(*args, **kwargs):
        raise AssertionError("Ray or a trial was started on bad storage")

    monkeypatch.setattr("raydaug.tune.runner.connect", trap)
    monkeypatch.setattr("raydaug.tune.runner.build_tuner", trap)
    closed = MotoS3()  # a port where nothing listens: its server is never started
    uri, fragment = {
        "unknown bucket": (s3.uri("no-such-bucket/runs"), "bucket 'no-such-bucket' does not exist"),
        "wrong credentials": (s3_with_auth.uri(f"{BUCKET}/runs"), "cannot read bucket 'raydaug-runs' with these "
                                                                  "credentials"),
        "endpoint down": (closed.uri(f"{BUCKET}/runs"), f"no S3 endpoint answers at {closed.endpoint}"),
    }[case]
    closed.stop()
    started = time.monotonic()
    assert main(["tune", "smoke", "--smoke", "--storage", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raydaug: error: --storage") and "\n" not in err, err
    assert fragment in err, err
    assert time.monotonic() - started < 15
    if case != "endpoint down":  # (pyarrow's S3 client retries a closed port for seconds: not repeated here)
        assert main(["analyze", join(uri, "smoke_smoke"), "--out", str(tmp_path / "report")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("raydaug: error:") and "\n" not in err, err
        assert not (tmp_path / "report").exists()


# ---------------------------------------------------------------------- 2. a cluster with S3 storage
@pytest.mark.slow
def test_a_cluster_sharing_only_the_bucket_survives_a_worker_node_kill(s3, tmp_path):
    epochs = 10
    config = write_experiment(
        tmp_path / "s3_cluster.py", "s3_cluster", epochs,
        "{'alpha': tune.loguniform(0.02, 0.5), 'lr_c': tune.grid_search([1e-5, 2e-3])}", scheduler="pbt",
        options=f"{{'perturbation_interval': {INTERVAL}, 'quantile_fraction': 0.5, 'resample_probability': 0.25}}")
    storage = s3.uri(f"{BUCKET}/cluster")
    run_dir = join(storage, "s3_cluster")
    cluster = LoopbackCluster(**S3_ENV)  # the credentials every node (raylet, trial workers) is started with
    driver = None
    try:
        cluster.start(workers=2)
        log = cluster.base / "driver.log"
        driver = spawn([sys.executable, "-m", "raydaug", "tune", config, "--address", cluster.address,
                        "--storage", storage], log, cluster.env, cwd=cluster.folder("cwd-driver"))
        wait_for(lambda: every_trial_reached(run_dir, 2, INTERVAL) and cluster.runs_a_trial("worker1"),
                 "a checkpoint of each trial in the bucket, and a trial on worker1", process=driver, log=log,
                 every_s=1.0)
        running, killed_at, before = cluster.kill_worker_midway("worker1", driver, log,
                                                                lambda: durable_iterations(run_dir), epochs)
        local_runs = sorted(str(p) for p in cluster.base.rglob("parquet"))
    finally:
        if driver is not None:
            kill_group(driver)
        cluster.stop()
    assert local_runs == [], f"Parquet logs on a node's disk: {local_runs}"
    assert_every_iteration_once(run_dir, trials=2, epochs=epochs, redone_per_restore=INTERVAL)
    events = trial_events(run_dir)
    restored = events[(events["event"] == "restore") & (events["timestamp"] > killed_at)]
    assert not restored.empty, "the killed node's trial never came back"
    report("worker node SIGKILL, S3 storage", durable_before_kill=before,
           rows_written_twice=rows_written_twice(run_dir))


# ---------------------------------------------------------------------- 3. driver kill, resume from S3 alone
@pytest.mark.slow
def test_driver_sigkill_then_resume_from_the_bucket_in_a_fresh_folder(s3, tmp_path):
    epochs = 10
    config = write_experiment(tmp_path / "s3_resume.py", "s3_resume", epochs, "{'seed': tune.grid_search([0, 1])}")
    storage = s3.uri(f"{BUCKET}/resume")
    run_dir = join(storage, "s3_resume")
    argv = [sys.executable, "-m", "raydaug", "tune", config, "--storage", storage]
    first_work, first_ray = tmp_path / "first", short_folder("rdd-")
    first_work.mkdir()
    log = tmp_path / "driver.log"
    driver = spawn(argv, log, child_env(RAY_TMPDIR=str(first_ray)), cwd=first_work)
    try:
        wait_for(lambda: any(n.startswith("experiment_state-") for n in s3.files(f"{BUCKET}/resume/s3_resume"))
                 and every_trial_reached(run_dir, 2, 2 * INTERVAL), "two checkpoints per trial in the bucket",
                 process=driver, log=log, every_s=1.0)
    finally:
        kill_group(driver)
    before = durable_iterations(run_dir)
    assert min(before.values()) < epochs, f"the driver was killed after the trials finished: {before}"
    # nothing local survives: the driver's working folder and its whole Ray temp dir go
    shutil.rmtree(first_work)
    shutil.rmtree(first_ray, ignore_errors=True)

    second_work, second_ray = tmp_path / "second", short_folder("rdd-")
    second_work.mkdir()
    resume = spawn([*argv, "--resume"], log, child_env(RAY_TMPDIR=str(second_ray)), cwd=second_work)
    try:
        code, output = finish(resume, log)
    finally:
        kill_group(resume)
        shutil.rmtree(second_ray, ignore_errors=True)
    assert code == 0, output[-3000:]
    assert "resuming s3_resume" in output
    assert_every_iteration_once(run_dir, trials=2, epochs=epochs, redone_per_restore=2 * INTERVAL)
    report("driver SIGKILL, resume from S3", durable_before_kill=before, rows_written_twice=rows_written_twice(run_dir))


def test_the_probed_endpoint_is_the_one_pyarrow_uses(monkeypatch):
    """The TCP probe goes where the S3 client goes: the URI's endpoint_override, else AWS_ENDPOINT_URL_S3
    / AWS_ENDPOINT_URL (pyarrow reads them too), else AWS's regional endpoint."""
    import pyarrow.fs as pafs

    from raydaug.tune.storage import s3_endpoint

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    fs = pafs.S3FileSystem(region="eu-west-1")
    assert s3_endpoint("s3://b/x?endpoint_override=10.0.0.5:9000&scheme=http", fs) == ("10.0.0.5", 9000)
    assert s3_endpoint("s3://b/x", fs) == ("s3.eu-west-1.amazonaws.com", 443)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9100")
    assert s3_endpoint("s3://b/x", fs) == ("minio.internal", 9100)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://store.example.org")
    assert s3_endpoint("s3://b/x", fs) == ("store.example.org", 443)
