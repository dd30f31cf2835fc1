"""Ray Tune integration (CPU, tiny digits configs): PBT exploit, actor reuse, resume, resources,
replay, and bad input rejected before any trial starts."""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.tune.trainable import wrap_function  # noqa: E402

from raydaug.allowed import BASE_AUGS  # noqa: E402
from raydaug.checkpoint import load_checkpoint  # noqa: E402
from raydaug.cli import main  # noqa: E402
from raydaug.config import MUTABLE_HPARAMS, Config, ConfigError  # noqa: E402
from raydaug.errors import UsageError  # noqa: E402
from raydaug.experiment import Experiment, load_experiment  # noqa: E402
from raydaug.train import Trainer  # noqa: E402
from raydaug.tune import runner  # noqa: E402
from raydaug.tune.callbacks import progress_table  # noqa: E402
from raydaug.tune.cluster import check_cluster  # noqa: E402
from raydaug.tune.options import TuneOptions  # noqa: E402
from raydaug.tune.replay import run_replay  # noqa: E402
from raydaug.tune.trainable import trial_config  # noqa: E402
from tests.helpers import TINY  # noqa: E402

# CPUs per trial on the session's 2-CPU Ray so that a 2-trial population runs one trial at a time. Two
# concurrent trials do not always overlap (a worker that starts late finds the other trial finished) and
# PBT compares only unfinished trials: such a run exploits nothing.
ONE_AT_A_TIME = 1.5
LR_KEYS = {"lr_c": "lr/c", "lr_g": "lr/g", "lr_dc": "lr/dc", "lr_dd": "lr/dd"}
HP_KEYS = {"alpha": "hp/alpha", "beta": "hp/beta", "gamma": "hp/gamma", "teacher_weight": "hp/teacher_weight"}


def tune_args(**changes) -> TuneOptions:
    """The options of ``raydaug tune smoke`` with ``changes``."""
    return TuneOptions(**{"config": "smoke", **changes})


class Recorder(tune.Callback):
    """Every result the driver processed, with the trial's config *after* the scheduler acted on it."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.append({"trial": trial.trial_id, "result": dict(result),
                          "config_after": dict(trial.config),
                          "exploited_here": dict(result["config"]) != dict(trial.config)})


def read_parquet(run_dir: str, table: str) -> pd.DataFrame:
    return pd.read_parquet(Path(run_dir) / "parquet" / table)


def test_progress_table_shows_the_values_the_trainer_reported_else_the_configs():
    """A replay changes α in place (its config keeps the initial value) and a preset sets β: the table
    shows what the trainer reported; γ, reported by neither, is the config's, and lr_g is unknown."""
    trial = SimpleNamespace(trial_id="t0", status="RUNNING", config={"preset": "paper_mnist", "alpha": 0.3,
                                                                     "gamma": 0.01},
                            last_result={"training_iteration": 4, "acc/val": 0.5, "hp/alpha": 0.7, "hp/beta": 0.05,
                                         "lr/dd": 2e-4})
    header, row = progress_table([trial]).splitlines()
    cells = dict(zip(header.split(), row.split()))
    assert ((cells["α"], cells["β"], cells["γ"], cells["lr_dd"], cells["lr_g"], cells["acc/val"])
            == ("0.7", "0.05", "0.01", "0.0002", "-", "0.5000"))


@pytest.mark.parametrize("event, title, status", [("on_trial_complete", "finished", "TERMINATED"),
                                                   ("on_trial_error", "failed", "ERROR")])
def test_the_table_printed_when_a_trial_ends_shows_it_ended(event, title, status):
    """Tune calls on_trial_complete/on_trial_error while the trial's status still says RUNNING: the table
    printed then must show the trial as ended, the other trials as they are."""
    from raydaug.tune.callbacks import ProgressTable

    done, other = (SimpleNamespace(trial_id=name, status="RUNNING", config={}, last_result={"training_iteration": 4})
                   for name in ("t0", "t1"))
    printed: list[str] = []
    getattr(ProgressTable(write=printed.append), event)(0, [done, other], done)
    heading, _, *rows = printed[0].splitlines()
    assert f"trial t0 {title}" in heading
    assert {row.split()[0]: row.split()[1] for row in rows} == {"t0": status, "t1": "RUNNING"}
    assert done.status == "RUNNING"  # the trial itself is Tune's to change


def test_the_start_line_counts_every_trial_of_the_grid(tmp_path, monkeypatch):
    """A grid of two points with one sample each is two trials: the start line says so (it said
    "1 sample(s)"). No Ray: the cluster and the Tuner are stand-ins."""
    experiment = Experiment(name="grid", base={**TINY}, search_space={"seed": tune.grid_search([0, 1]),
                                                                      "aug": tune.grid_search(["none", "light"])},
                            num_samples=3)
    plan = runner.plan_experiment(experiment, tune_args(storage=str(tmp_path)))
    assert plan.trial_count == 12
    monkeypatch.setattr(runner, "connect", lambda plan: False)
    monkeypatch.setattr(runner, "alive_nodes", lambda: [{"CPU": 2.0}])
    monkeypatch.setattr(runner, "build_tuner", lambda plan, callbacks: SimpleNamespace(fit=lambda: []))
    lines: list[str] = []
    runner.launch(plan, log=lines.append)
    assert "starting grid: 12 trial(s) (3 sample(s) per grid point)," in lines[0], lines
    single = runner.plan_experiment(dataclasses.replace(experiment, search_space={}, num_samples=2),
                                    tune_args(storage=str(tmp_path), name="single"))
    assert single.trial_count == 2


# ---------------------------------------------------------------------- PBT exploit
def test_pbt_exploit_restores_donor_checkpoint_and_new_hyperparameters(ray_session, tmp_path):
    experiment = Experiment(
        name="pbt", base={**TINY, "epochs": 4},
        # a classifier that cannot learn (lr_c 1e-6) is always the lower half, and with 1.5 of the 2 CPUs
        # per trial the two alternate (PBT pauses each at every report while the other waits): exploits
        # are certain, whatever the time a worker takes to start (ONE_AT_A_TIME)
        search_space={"alpha": tune.loguniform(0.02, 0.5), "lr_c": tune.grid_search([1e-6, 3e-3])},
        scheduler="pbt",
        scheduler_options={"perturbation_interval": 1, "quantile_fraction": 0.5, "resample_probability": 0.5},
        num_samples=1, cpus_per_trial=ONE_AT_A_TIME, checkpoints_to_keep=2)
    plan = runner.plan_experiment(experiment, tune_args(storage=str(tmp_path)))
    recorder = Recorder()
    results, plan = runner.launch(plan, [recorder], log=lambda _: None)
    assert not results.errors

    events = read_parquet(plan.run_dir, "pbt_events")
    assert not events.empty, "the forced PBT (2 trials, quantile 0.5, every iteration) never exploited"
    assert set(events["key"]) == set(MUTABLE_HPARAMS)

    sha_at = {(row["trial"], row["result"]["training_iteration"]): row["result"]["checkpoint/sha256"]
              for row in recorder.rows if "checkpoint/sha256" in row["result"]}
    # one exploit = one row per mutated key, written together; the k-th exploit of a trial in Parquet is
    # the k-th result after which the driver saw that trial's config change
    exploits = {dst: [frame.iloc[i:i + len(MUTABLE_HPARAMS)] for i in range(0, len(frame), len(MUTABLE_HPARAMS))]
                for dst, frame in events.sort_values("timestamp").groupby("dst_trial")}
    seen = {dst: 0 for dst in exploits}
    checked = 0
    for index, row in enumerate(recorder.rows):
        if not row["exploited_here"]:
            continue
        dst, new_config = row["trial"], row["config_after"]
        event = exploits[dst][seen[dst]]
        seen[dst] += 1
        iteration, src = int(event["training_iteration"].iloc[0]), str(event["src_trial"].iloc[0])
        assert dict(zip(event["key"], event["new_value"])) == pytest.approx(
            {key: float(new_config[key]) for key in MUTABLE_HPARAMS})
        following = [r for r in recorder.rows[index + 1:] if r["trial"] == dst]
        if not following:
            continue
        report = following[0]["result"]
        # the next report continues from the donor's checkpoint, bit for bit
        assert report["training_iteration"] == iteration + 1
        assert report["checkpoint/restored_sha256"] == sha_at[(src, iteration)]
        # ... with the new hyperparameters live in the losses and the optimisers
        for key, metric in {**HP_KEYS, **LR_KEYS}.items():
            assert report[metric] == pytest.approx(float(new_config[key]), rel=1e-12), key
        checked += 1
    assert checked >= 1

    # the exploited trial owns a copy of the donor checkpoint; it loads to the same payload
    copies = list(Path(plan.run_dir, "exploit_checkpoints").glob("*/*/state.pt"))
    assert copies
    payload = load_checkpoint(copies[0])
    assert set(payload["nets"]) == {"g", "dc", "dd", "c"}

    # Parquet: one trial row per start/restore; one metrics row per result the driver received, each
    # iteration of each trial there, none written twice (an exploit to an older donor checkpoint redoes an
    # iteration: the driver then receives it twice as well)
    trials = read_parquet(plan.run_dir, "trials")
    assert {"start", "restore"} <= set(trials["event"])
    metrics = read_parquet(plan.run_dir, "metrics")
    written = collections.Counter(zip(metrics["trial_id"].astype(str), metrics["training_iteration"]))
    received = collections.Counter((row["trial"], row["result"]["training_iteration"]) for row in recorder.rows)
    assert written == received
    for trial_id, frame in metrics.groupby("trial_id", observed=True):
        assert set(frame["training_iteration"]) == {1, 2, 3, 4}, trial_id


def first_report_with(rows: list[dict], trial: str, values: dict[str, float]) -> dict | None:
    """The trial's first result after a restore whose config holds ``values``."""
    for row in rows:
        config = row["result"]["config"]
        if (row["trial"] == trial and "checkpoint/restored_sha256" in row["result"]
                and {key: float(config[key]) for key in values} == pytest.approx(values)):
            return row["result"]
    return None


def test_pb2_on_the_smoke_config_records_exploits_and_trains_on_the_new_values(ray_session, tmp_path):
    """The smoke experiment with scheduler="pb2": PB2 exploits (recorded in pbt_events), and the values
    its GP-bandit explore chose are the ones the exploited trial reports (and so trains with) next."""
    smoke = load_experiment("smoke")
    options = {k: v for k, v in smoke.scheduler_options.items() if k != "resample_probability"}  # PBT only
    experiment = dataclasses.replace(smoke, scheduler="pb2", scheduler_options=options)
    plan = runner.plan_experiment(experiment, tune_args(storage=str(tmp_path), smoke=True,
                                                        cpus_per_trial=ONE_AT_A_TIME))
    assert plan.scheduler == "pb2"
    recorder = Recorder()
    results, plan = runner.launch(plan, [recorder], log=lambda _: None)
    assert not results.errors
    events = read_parquet(plan.run_dir, "pbt_events")
    assert not events.empty, "PB2 never exploited"
    assert set(events["key"]) == set(MUTABLE_HPARAMS)
    checked = 0
    for _, rows in events.groupby("timestamp"):
        new = dict(zip(rows["key"], rows["new_value"]))
        assert new != dict(zip(rows["key"], rows["old_value"]))
        report = first_report_with(recorder.rows, rows["dst_trial"].iloc[0], new)
        if report is None:
            continue  # exploited at its last perturbation
        assert report["training_iteration"] == int(rows["training_iteration"].iloc[0]) + 1
        for key, metric in {**HP_KEYS, **LR_KEYS}.items():
            assert report[metric] == pytest.approx(new[key], rel=1e-12), key
        checked += 1
    assert checked >= 1


# ---------------------------------------------------------------------- actor reuse
def test_reused_actor_keeps_no_state_of_the_previous_trial(ray_session, tmp_path):
    # 1.5 CPU per trial on a 2-CPU Ray: one trial at a time, so the second reuses the first's actor
    experiment = Experiment(
        name="reuse", base={**TINY, "epochs": 2},
        search_space={"seed": tune.grid_search([3, 0]), "lr_c": tune.grid_search([3e-3])},
        scheduler="fifo", num_samples=1, cpus_per_trial=1.5)
    plan = runner.plan_experiment(experiment, tune_args(storage=str(tmp_path)))
    recorder = Recorder()
    results, plan = runner.launch(plan, [recorder], log=lambda _: None)
    assert not results.errors
    by_seed = {}
    for row in recorder.rows:
        by_seed.setdefault(row["result"]["config"]["seed"], []).append(row["result"])
    assert by_seed[3][0]["worker/pid"] == by_seed[0][0]["worker/pid"], "the actor was not reused"

    # the same config trained from scratch in this process gives the same numbers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(trial_config({**TINY, "epochs": 2, "seed": 0, "lr_c": 3e-3}, gpus=0.0))
        fresh = [trainer.train_iteration() for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    for reused, alone in zip(by_seed[0], fresh):
        for key in ("loss/c", "loss/g", "loss/dc", "loss/dd", "acc/val", "acc/test", "aug/l1"):
            assert reused[key] == pytest.approx(alone[key], rel=1e-5, abs=1e-7), key


# ---------------------------------------------------------------------- stop half-way, resume
class InterruptAt(tune.Callback):
    """Send the driver SIGUSR1 (Tune's own 'stop and save state' signal) once a trial reaches ``iteration``."""

    def __init__(self, iteration: int):
        self.iteration = iteration
        self.sent = False

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not self.sent and result["training_iteration"] >= self.iteration:
            self.sent = True
            os.kill(os.getpid(), signal.SIGUSR1)


def test_a_learned_stages_pilot_reads_the_arms_its_hand_made_stage_trained(ray_session, tmp_path):
    """One command, the hand-made stage first: its eight trials leave their records in RUN_DIR; the learned
    trial's pilot then reads all eight (it trains and adds none), each scored as that trial's best acc/val,
    though the learned trial samples its own lr_c (its pilot trains at the hand-made stage's)."""
    import pyarrow.dataset as ds

    from raydaug.analysis.load import config_dicts, load
    from raydaug.presets import HAND_MADE

    path = tmp_path / "fight.py"
    path.write_text(
        "from ray import tune\nfrom raydaug.experiment import BASELINES_STAGE, TINY_DIGITS, Experiment\n"
        "from raydaug.presets import HAND_MADE\n"
        "BASE = {**TINY_DIGITS, 'epochs': 2, 'checkpoint_every': 2}\n"
        "def experiment():\n"
        "    return Experiment(name='fight', base={**BASE, 'aug': 'learned', 'base_aug': 'auto'},\n"
        "                      search_space={'lr_c': tune.loguniform(3e-4, 3e-3)})\n"
        "def followup(run_dir):\n"
        "    return Experiment(name=BASELINES_STAGE, base=BASE,\n"
        "                      search_space={'aug': tune.grid_search(list(HAND_MADE))})\n")
    lines: list[str] = []
    runner.run_tune(tune_args(config=str(path), storage=str(tmp_path / "runs")), log=lines.append)
    assert lines.index(next(line for line in lines if line.startswith("starting fight_baselines"))) < \
        lines.index(next(line for line in lines if line.startswith("starting fight:")))
    run_dir = tmp_path / "runs" / "fight"
    assert ds.dataset(run_dir / "parquet" / "pilot_arms").count_rows() == len(HAND_MADE)
    state = sorted(run_dir.glob("train_trial_*/checkpoint_*/state.pt"))[-1]
    assert load_checkpoint(state)["pilot"]["reused"] == len(HAND_MADE)
    pilots = load(str(run_dir)).pilots
    baselines = load(str(tmp_path / "runs" / "fight_baselines"))
    aug_of = {trial: values["aug"] for trial, values in config_dicts(baselines).items()}
    best = baselines.metrics.groupby("trial_id", observed=True)["acc/val"].max().rename(index=lambda t: aug_of[str(t)])
    assert dict(zip(pilots["base_aug"], pilots["acc_val"])) == best.to_dict()


def test_interrupted_run_resumes_and_finishes_every_trial(ray_session, tmp_path):
    epochs = 6
    experiment = Experiment(
        name="resume", base={**TINY, "epochs": epochs, "checkpoint_every": 2},
        search_space={"seed": tune.grid_search([0, 1])}, scheduler="fifo", cpus_per_trial=1.0)
    args = tune_args(storage=str(tmp_path))
    plan = runner.plan_experiment(experiment, args)
    # at iteration 3's result, iteration 2's checkpoint is registered: the resume must start there
    first, plan = runner.launch(plan, [InterruptAt(3)], log=lambda _: None)
    reached = {r.metrics["trial_id"]: r.metrics.get("training_iteration", 0) for r in first}
    assert min(reached.values()) < epochs, f"the interruption came too late to test anything: {reached}"

    with pytest.raises(UsageError, match="--resume"):  # the same name without --resume is refused
        runner.plan_experiment(experiment, args)
    resumed_plan = runner.plan_experiment(experiment, tune_args(storage=str(tmp_path), resume=True))
    second, _ = runner.launch(resumed_plan, log=lambda _: None)
    assert not second.errors
    assert sorted(r.metrics["training_iteration"] for r in second) == [epochs, epochs]
    metrics = read_parquet(plan.run_dir, "metrics")
    for trial_id, frame in metrics.groupby("trial_id", observed=True):
        assert set(frame["training_iteration"]) == set(range(1, epochs + 1)), trial_id
    trials = read_parquet(plan.run_dir, "trials")
    restores = trials[trials["event"] == "restore"]
    assert not restores.empty and restores["training_iteration"].min() >= 2, "resumed from scratch"


# ---------------------------------------------------------------------- replay
def test_replay_follows_the_schedule(ray_session, tmp_path):
    initial = Config.from_dict({**TINY, "epochs": 4}).to_dict()
    schedule = {"trial_id": "x", "metric": "acc/val", "initial_config": initial,
                "changes": [{"training_iteration": 1,
                             "config": {**{k: initial[k] for k in MUTABLE_HPARAMS}, "alpha": 0.3, "lr_c": 2e-3}},
                            {"training_iteration": 2,
                             "config": {**{k: initial[k] for k in MUTABLE_HPARAMS}, "alpha": 0.7, "lr_c": 4e-4}}]}
    run_dir = run_replay(schedule, str(tmp_path), "replay", cpus_per_trial=1.0, log=lambda _: None)
    metrics = read_parquet(run_dir, "metrics").sort_values("timestamp")
    last = metrics.groupby("training_iteration").last()
    assert list(last.index) == [1, 2, 3, 4], "the replay must train past its last change to the end"
    assert last.loc[1, "hp/alpha"] == pytest.approx(initial["alpha"])
    assert last.loc[2, "hp/alpha"] == pytest.approx(0.3) and last.loc[2, "lr/c"] == pytest.approx(2e-3)
    for iteration in (3, 4):
        assert last.loc[iteration, "hp/alpha"] == pytest.approx(0.7)
        assert last.loc[iteration, "lr/c"] == pytest.approx(4e-4)


# ---------------------------------------------------------------------- resources (no GPU needed)
def test_fractional_gpu_share_maps_to_ray_resources(tmp_path):
    plan = runner.plan_from_options(tune_args(storage=str(tmp_path), gpus_per_trial=0.5, cpus_per_trial=1.0))
    assert plan.gpus_per_trial == 0.5
    request = wrap_function(runner.build_trainable(plan)).default_resource_request({})
    assert request.required_resources == {"CPU": 1.0, "GPU": 0.5}
    # two such trials fit one GPU; a CPU-only cluster is refused before launch
    check_cluster(plan, [{"CPU": 2.0, "GPU": 1.0}])
    with pytest.raises(UsageError, match="GPU"):
        check_cluster(plan, [{"CPU": 2.0}])
    with pytest.raises(UsageError, match="GPU"):
        check_cluster(runner.plan_from_options(tune_args(storage=str(tmp_path), gpus_per_trial=2)),
                             [{"CPU": 8.0, "GPU": 1.0}])


def test_trial_device_follows_assigned_resources():
    assert trial_config(TINY, gpus=0.0).device == "cpu"
    with pytest.raises(ConfigError, match="device=cuda"):
        trial_config({**TINY, "device": "cuda"}, gpus=0.0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            trial_config(TINY, gpus=0.25)


# ---------------------------------------------------------------------- bad input, before launch
def write_config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "user_config.py"
    path.write_text("from ray import tune\nfrom raydaug.experiment import Experiment\n" + body)
    return str(path)


@pytest.mark.parametrize("body, changes, error, fragment", [
    ("X = 1\n", {}, ConfigError, "does not define experiment()"),
    ("def experiment():\n"
     "    return Experiment(name='x', base={}, search_space={'learning_rate': tune.uniform(0, 1)})\n",
     {}, ConfigError, "unknown config key"),
    ("def experiment():\n    return Experiment(name='x', base={}, scheduler='pbt',\n"
     "        scheduler_options={'mutations': {'lr_c': (-1e-3, 1e-2)}})\n", {}, ConfigError, "lr_c"),
    ("def experiment():\n    return Experiment(name='x', base={}, scheduler='pbt',\n"
     "        scheduler_options={'mutations': {'epochs': (1, 10)}})\n", {}, ConfigError, "epochs"),
    ("def experiment():\n"
     "    return Experiment(name='x', base={}, search_space={'lr_g': tune.grid_search([1e-3, -1.0])})\n",
     {}, ConfigError, "lr_g"),
    ("def experiment():\n    return Experiment(name='x', base={})\n", {"gpus_per_trial": 1.5},
     UsageError, "whole number"),
    ("def experiment():\n    return Experiment(name='x', base={})\n", {"storage": "nosuchscheme://bucket/x"},
     UsageError, "--storage"),
    ("def experiment():\n    return Experiment(name='x', base={})\n", {"address": "not an address"},
     UsageError, "--address"),
    ("def experiment():\n    return Experiment(name='x', base={})\n", {"sets": ["alpha=-1"]}, ConfigError, "alpha"),
])
def test_bad_input_fails_before_launch(tmp_path, body, changes, error, fragment):
    path = write_config(tmp_path, body)
    changes = {"storage": str(tmp_path / "runs"), **changes}
    with pytest.raises(error, match=re.escape(fragment)):
        runner.plan_from_options(tune_args(config=path, **changes))
    assert not (tmp_path / "runs").exists()


def test_cli_reports_bad_input_on_one_line(tmp_path, capsys):
    code = main(["tune", "smoke", "--gpus-per-trial", "2.5", "--storage", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "whole number" in err[0]


@pytest.mark.parametrize("name", sorted(p.stem for p in Path(__file__).resolve().parents[1].glob("tune_configs/*.py")
                                         if not p.stem.startswith("_")))
def test_every_tune_config_plans_in_smoke_and_full_size(tmp_path, name):
    full = runner.plan_from_options(tune_args(config=name, storage=str(tmp_path)))
    smoke = runner.plan_from_options(tune_args(config=name, storage=str(tmp_path), smoke=True))
    assert smoke.base.dataset == "digits" and smoke.base.epochs <= 6
    assert smoke.scheduler == full.scheduler and smoke.name.endswith("_smoke")
    if full.scheduler == "pbt":
        assert full.settings.perturbation_interval % (full.base.checkpoint_every // full.base.eval_every) == 0



@pytest.mark.parametrize("scheduler", ["pbt", "pb2"])
@pytest.mark.parametrize("key, values", [("seed", [0, 1]), ("train_per_class", [5, 10]), ("image_size", [16, 32]),
                                         ("ngf", [8, 16])])
def test_a_population_searching_over_its_split_or_nets_is_refused_before_ray_starts(
        tmp_path, monkeypatch, capsys, scheduler, key, values):
    """The seed and the split sizes decide the data split: a PBT/PB2 exploit across them would train on
    another member's test images (and across nets could not load the donor's checkpoint). Refused with a
    ConfigError naming the key, exit 2, before Ray is started."""
    def trap(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr("raydaug.tune.runner.connect", trap)
    monkeypatch.setattr(ray, "init", trap)
    path = write_config(tmp_path, "def experiment():\n    return Experiment(name='x', base={}, "
                                  f"scheduler={scheduler!r}, search_space={{{key!r}: tune.grid_search({values})}})\n")
    with pytest.raises(ConfigError, match=rf"must share {key}:.*--set seed=N"):
        runner.plan_from_options(tune_args(config=path, storage=str(tmp_path / "runs")))
    assert main(["tune", path, "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and key in err and err.startswith("raydaug: error:")
    assert not (tmp_path / "runs").exists()
    # one value per population is fine (--set wins over the search space)
    runner.plan_from_options(tune_args(config=path, storage=str(tmp_path / "runs"), sets=[f"{key}={values[0]}"]))


# ---------------------------------------------------------------------- tune_configs
def test_tune_configs_are_found_as_the_installed_package_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no tune_configs/ here
    plan = runner.plan_from_options(tune_args(config="smoke", storage=str(tmp_path / "runs")))
    assert plan.experiment.name == "smoke"
    assert plan.module.path == Path(__file__).resolve().parents[1] / "tune_configs" / "smoke.py"
    # a path to a file still works, relative to the working folder
    (tmp_path / "mine.py").write_text("from raydaug.experiment import Experiment\n"
                                      "def experiment():\n    return Experiment(name='mine', base={})\n")
    assert runner.plan_from_options(tune_args(config="mine.py", storage=str(tmp_path / "runs"))).name == "mine"
    with pytest.raises(ConfigError, match=r"tune_config 'nosuch' not found: .*digits_pbt.*smoke"):
        runner.plan_from_options(tune_args(config="nosuch", storage=str(tmp_path / "runs")))
    with pytest.raises(ConfigError, match="not found"):  # the package's helper module is not an experiment
        runner.plan_from_options(tune_args(config="_common", storage=str(tmp_path / "runs")))


def test_the_cli_finds_a_tune_config_by_name_from_another_folder(tmp_path):
    """`raydaug tune NAME` as a user types it, from a folder without tune_configs/ (the editable install's
    finder supplies the package): the experiment is found and planned (a bad --set then stops it)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "raydaug", "tune", "digits_pbt", "--storage", str(tmp_path / "r"),
                           "--set", "colour=red"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown config key 'colour'" in done.stderr, done.stderr


def test_a_followup_comes_from_the_one_loaded_module(tmp_path):
    """The tune_config module is executed once: its follow-up is the function loaded with experiment()."""
    counter = tmp_path / "executions.txt"
    path = tmp_path / "two_stage.py"
    path.write_text(
        "from pathlib import Path\nfrom raydaug.experiment import Experiment\n"
        f"counter = Path({str(counter)!r})\n"
        "counter.write_text(counter.read_text() + 'x' if counter.exists() else 'x')\n"
        "def experiment():\n    return Experiment(name='first', base={})\n"
        "def followup(run_dir):\n    return Experiment(name='second', base={'data_dir': run_dir})\n")
    plan = runner.plan_from_options(tune_args(config=str(path), storage=str(tmp_path / "runs")))
    second = runner._followup(plan)
    assert second.name == "second" and second.base == {"data_dir": plan.run_dir}
    assert counter.read_text() == "x"


def record_launches(monkeypatch, last_epoch: int) -> list[str]:
    """Replace runner.launch by a stand-in whose one trial of 7 epochs got to ``last_epoch``; returns the
    list of the stage names launched, in order."""
    launched = []

    def fake_launch(plan, callbacks=(), log=print):
        launched.append(plan.name)
        result = SimpleNamespace(metrics={"trial_id": "t0", "epoch": last_epoch}, config={"epochs": 7}, error=None)
        return [result], plan

    monkeypatch.setattr(runner, "launch", fake_launch)
    return launched


@pytest.mark.parametrize("last_epoch, stages", [(3, ["ema_study_baselines"]),
                                                 (7, ["ema_study_baselines", "ema_study"])])
def test_the_hand_made_stage_runs_first_and_a_stopped_one_stops_the_command(tmp_path, monkeypatch, last_epoch,
                                                                            stages):
    """ema_study's follow-up is its hand-made baselines: they run before the learned trials (whose pilots then
    read their arms), and Ctrl-C there stops the command before the learned stage starts."""
    launched, lines = record_launches(monkeypatch, last_epoch), []
    runner.run_tune(tune_args(config="ema_study", storage=str(tmp_path), sets=["epochs=7"]), log=lines.append)
    assert launched == stages
    assert any("ema_study_baselines first" in line for line in lines)
    assert any("ema_study was not started" in line for line in lines) == (len(stages) == 1)


@pytest.mark.parametrize("last_epoch, stages", [(3, ["first"]), (7, ["first", "first_second"])])
def test_a_stopped_first_stage_does_not_start_its_followup(tmp_path, monkeypatch, last_epoch, stages):
    """A follow-up built from the first stage (Fig. 4's C on frozen snapshots) runs after it, and not at all
    when Ctrl-C stopped it: it would be built from unfinished trials. A first stage that finished goes on."""
    path = tmp_path / "two_stage.py"
    path.write_text("from raydaug.experiment import Experiment\n"
                    "def experiment():\n    return Experiment(name='first', base={'epochs': 7})\n"
                    "def followup(run_dir):\n    return Experiment(name='second', base={'epochs': 7})\n")
    launched, lines = record_launches(monkeypatch, last_epoch), []
    runner.run_tune(tune_args(config=str(path), storage=str(tmp_path / "runs")), log=lines.append)
    assert launched == stages
    assert any("follow-up stage was not started" in line for line in lines) == (len(stages) == 1)


def test_resume_after_the_hand_made_stage_stopped_starts_the_learned_stage(tmp_path, monkeypatch):
    """--resume of a command stopped in its hand-made stage resumes that stage and starts the learned one,
    which had not started (its RUN_DIR holds only the arms' records); without a hand-made stage to resume,
    --resume of a run that never started is refused as before."""
    from raydaug.logging.parquet import join
    from raydaug.tune import plan as plan_module

    args = tune_args(config="ema_study", storage=str(tmp_path), sets=["epochs=7"], resume=True)
    with pytest.raises(UsageError, match="no Tune experiment to resume"):
        runner.plan_from_options(args)
    hand_made_dir = join(str(tmp_path), "ema_study_baselines")
    monkeypatch.setattr(plan_module.tune.Tuner, "can_restore", staticmethod(lambda path: path == hand_made_dir))
    (tmp_path / "ema_study" / "parquet" / "pilot_arms").mkdir(parents=True)
    plan = runner.plan_from_options(args)
    assert not plan.resume
    assert runner.plan_followup(plan, resume=True).resume
    assert plan.pilot_store == plan.run_dir == runner.plan_followup(plan, resume=True).pilot_store


def test_a_populations_pilots_train_at_the_learning_rate_of_the_hand_made_stage(tmp_path):
    """mnist5k_pbt's members sample lr_c: their pilots train C alone at the hand-made stage's lr_c (the
    preset's), so they read its arms; a fixed lr_c (--set) is every trial's own, and nothing is overridden."""
    plan = runner.plan_from_options(tune_args(config="mnist5k_pbt", storage=str(tmp_path)))
    assert plan.pilot_values == {"lr_c": runner.plan_followup(plan).base.lr_c} and plan.base.lr_c != 1e-3
    assert plan.pilot_values["lr_c"] == 1e-3  # preset mnist5k_small's
    fixed = runner.plan_from_options(tune_args(config="mnist5k_pbt", storage=str(tmp_path), sets=["lr_c=0.002"]))
    assert fixed.pilot_values == {}
    assert runner.plan_from_options(tune_args(config="fair_fight", storage=str(tmp_path))).pilot_values == {}


def test_every_stage_keeps_the_arms_in_one_store_unless_told_another(tmp_path, monkeypatch):
    """One store for both stages of a command (the first stage's RUN_DIR); --pilot-store names another, made
    absolute (a trial runs in a folder of its own) and repeated by the resume command."""
    from raydaug.tune.summary import resume_command

    plan = runner.plan_from_options(tune_args(config="ema_study", storage=str(tmp_path)))
    assert runner.plan_followup(plan).pilot_store == plan.pilot_store == plan.run_dir
    monkeypatch.chdir(tmp_path)
    told = runner.plan_from_options(tune_args(config="ema_study", storage=str(tmp_path), pilot_store="old"))
    other = str(tmp_path / "old")
    assert told.pilot_store == runner.plan_followup(told).pilot_store == other
    assert resume_command(told).endswith(f"--pilot-store {other} --resume")


def test_no_followup_runs_the_first_stage_alone_and_its_resume_repeats_the_flag(tmp_path, monkeypatch):
    """`raydaug tune ema_study --no-followup` runs the learned trials only (a variant compared with another
    run's baselines); its printed resume command keeps the flag, so --resume does not start the baselines
    either. A tune_config without a follow-up stage refuses the flag."""
    from raydaug.cli import build_parser
    from raydaug.tune.summary import resume_command

    launched = record_launches(monkeypatch, last_epoch=7)
    argv = ["tune", "ema_study", "--storage", str(tmp_path), "--set", "epochs=7", "--no-followup"]
    options = TuneOptions.from_args(build_parser().parse_args(argv))
    runner.run_tune(options, log=lambda line: None)
    assert launched == ["ema_study"]
    plan = runner.plan_from_options(options)
    assert runner.plan_followup(plan) is None
    assert resume_command(plan).endswith(" --set epochs=7 --no-followup --resume")
    without = TuneOptions.from_args(build_parser().parse_args(argv[:-1]))
    assert runner.plan_followup(runner.plan_from_options(without)) is not None
    assert not resume_command(runner.plan_from_options(without)).count("--no-followup")
    with pytest.raises(UsageError, match="smoke has no follow-up stage"):
        runner.plan_from_options(TuneOptions.from_args(
            build_parser().parse_args(["tune", "smoke", "--storage", str(tmp_path), "--no-followup"])))


def test_grid_replaces_the_search_space_in_both_stages_and_resume_repeats_it(tmp_path):
    """`--grid seed=3,4` runs ema_study's learned trials and its baselines on seeds 3 and 4 only (the
    config's own seeds are 0, 1, 2), with --set applied to both stages; the printed resume command repeats
    both, since a follow-up stage that had not started is planned from them."""
    from raydaug.tune.summary import resume_command

    args = tune_args(config="ema_study", storage=str(tmp_path), grids=["seed=3,4"], sets=["epochs=7"])
    plan = runner.plan_from_options(args)
    second = runner.plan_followup(plan)
    for stage in (plan, second):
        assert stage.param_space["seed"] == {"grid_search": [3, 4]}
        assert stage.param_space["epochs"] == "7"
    assert second.param_space["aug"] == {"grid_search": list(BASE_AUGS)}  # every hand-made baseline
    assert plan.base.epochs == 7 and plan.base.seed == 3
    command = resume_command(second)
    assert command.endswith(" --set epochs=7 --grid seed=3,4 --resume") and f"--name {plan.name} " in command
    with pytest.raises(UsageError, match="--set and --grid both give seed"):
        runner.plan_from_options(tune_args(config="ema_study", storage=str(tmp_path), grids=["seed=3"],
                                           sets=["seed=1"]))


def test_a_grid_over_a_populations_split_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="must share seed"):
        runner.plan_from_options(tune_args(config="digits_pbt", storage=str(tmp_path), grids=["seed=0,1"]))


def test_the_summary_reads_a_run_as_analysis_does(tmp_path):
    """The best row of `raydaug tune`'s summary: a restored trial's superseded row does not count."""
    from raydaug.logging import parquet as P
    from raydaug.tune.summary import best_row

    run = str(tmp_path / "run")
    for stamp, rows in ((1.0, [(1, 0.5), (2, 0.99)]), (2.0, [(2, 0.6)])):  # iteration 2 reported again
        writer = P.metrics_writer(run, "t1")
        for iteration, value in rows:
            writer.append({**P.metrics_row({"acc/val": value, "acc/test": value}, iteration, 1.0), "timestamp": stamp})
        writer.flush()
    best = best_row(run)
    assert best["acc/val"] == 0.6 and best["training_iteration"] == 2 and best["trial_id"] == "t1"
    assert best_row(str(tmp_path / "empty")) is None


def test_default_mutations_leave_an_absent_teacher_out():
    """PBT's default mutations include the teacher's weight, except for a run without the teacher's term
    (preset=paper_method: teacher_weight 0), where clamping to the range would switch it on."""
    from raydaug.tune.schedulers import population_settings

    with_teacher = population_settings({}, Config.from_dict({}), "acc/val", "max").mutations
    paper = population_settings({}, Config.from_dict({"preset": "paper_method"}), "acc/val", "max").mutations
    assert "teacher_weight" in with_teacher
    assert set(paper) == set(with_teacher) - {"teacher_weight"}


def test_the_resume_command_of_a_followup_stage_continues_through_its_first_stage(tmp_path):
    """`raydaug tune X --resume` resumes stage 1 and then the follow-up RUN_DIR_baselines itself: the
    command printed for an interrupted follow-up must name stage 1's run (and keep --smoke)."""
    from raydaug.tune.summary import resume_command

    plan = runner.plan_from_options(tune_args(config="mnist5k_pbt", storage=str(tmp_path), smoke=True))
    followup = dataclasses.replace(plan, name=f"{plan.name}_baselines", stage_of=plan.name)
    command = resume_command(followup)
    assert f"--name {plan.name} " in command and command.endswith("--smoke --resume")
    assert "baselines" not in command
    assert resume_command(plan).startswith(f"raydaug tune {plan.config_path} --name {plan.name} ")


def test_the_fair_fight_gives_every_arm_its_datasets_chosen_magnitudes():
    """Both stages, learned (its pilot and G's base) and hand-made, train with the magnitudes chosen on
    validation for the trial's dataset (raydaug.presets.MAGNITUDES) and the defaults elsewhere."""
    from raydaug.config import Config
    from raydaug.presets import MAGNITUDES
    from raydaug.tune_configs import fair_fight

    for stage in (fair_fight.experiment(), fair_fight.followup("")):
        resolved = {}
        for dataset in ("digits", "mnist5k"):
            resolved[dataset] = {key: stage.search_space[key].func({"dataset": dataset})
                                 for key in fair_fight.MAGNITUDES_READ}
            assert resolved[dataset] == {key: MAGNITUDES.get(dataset, {}).get(key, getattr(Config(), key))
                                         for key in fair_fight.MAGNITUDES_READ}
        assert resolved["digits"] != resolved["mnist5k"]  # digits has magnitudes of its own
