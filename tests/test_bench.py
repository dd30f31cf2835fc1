"""The benchmark runner's protocol and the cost model's bookkeeping (no timing is asserted here)."""
import json
import sys
import types

import pytest

import bench.__main__ as runner
from bench import NotApplicable
from bench.bench_memory import trial_values
from bench.cost_model import rate_factor, trial_flops, trials_of
from raydaug.config import Config


@pytest.fixture()
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RESULTS_DIR", tmp_path)
    return tmp_path


def _fake_module(monkeypatch, name, run):
    module = types.ModuleType(f"bench.bench_{name}")
    module.run = run
    monkeypatch.setitem(sys.modules, f"bench.bench_{name}", module)


def test_a_module_that_does_not_apply_keeps_its_earlier_results(results_dir, monkeypatch):
    def run(quick):
        raise NotApplicable("no CUDA device")

    _fake_module(monkeypatch, "fakegpu", run)
    earlier = {"module": "fakegpu", "status": "ok", "results": [{"metric": "m", "value": 1.0, "unit": "",
                                                                   "goal": "", "met": None}]}
    (results_dir / "fakegpu.json").write_text(json.dumps(earlier))
    assert runner.main(["--child", "fakegpu"]) == runner.SKIPPED_EXIT
    assert json.loads((results_dir / "fakegpu.json").read_text()) == earlier


def test_a_failing_module_is_recorded_as_failed(results_dir, monkeypatch):
    def run(quick):
        raise RuntimeError("broken on purpose")

    _fake_module(monkeypatch, "fakebroken", run)
    assert runner.main(["--child", "fakebroken"]) == 1
    record = json.loads((results_dir / "fakebroken.json").read_text())
    assert record["status"] == "error" and "broken on purpose" in record["error"]


@pytest.mark.parametrize("rows, fragment", [
    ({"metric": "m"}, "list of dicts"),
    ([{"metric": "m", "value": 1.0, "unit": "", "goal": ""}], "lacks keys"),
    ([{"metric": "m", "value": "fast", "unit": "", "goal": "", "met": None}], "must be a number"),
    ([{"metric": "m", "value": 1.0, "unit": "", "goal": "", "met": "yes"}], "met must be"),
])
def test_bad_rows_are_rejected(rows, fragment):
    with pytest.raises((TypeError, ValueError), match=fragment):
        runner.validate_rows(rows)


def test_memory_bench_measures_the_largest_trial_of_a_grid():
    fig3 = trial_values("fig3_samples")
    assert fig3["train_per_class"] == 800 and fig3["aug"] == "learned"
    table3 = Config.from_dict(trial_values("table3_ablation"))
    assert table3.aug == "learned" and table3.use_dc and table3.use_dd


def test_cost_model_counts_trials_and_work():
    assert len(trials_of("table1_cifar10", 16)) == 16
    assert len(trials_of("table3_ablation", None)) == 27  # 9 rows x 3 seeds
    assert len(trials_of("fig3_samples", None)) == 15     # 5 sizes x 3 augmentations
    flops = {"step": 10.0, "eval": 1.0}
    config = Config.from_dict({"preset": "paper_cifar10", "aug": "learned", "epochs": 10, "eval_every": 5})
    work, samples = trial_flops(config, flops)
    assert samples == 10 * 4000
    assert work == samples * 10.0 + 2 * (4000 + 1000 + 10000) * 1.0
    baseline, _ = trial_flops(config.replace(aug="strong", preset=config.preset), flops)
    assert baseline == samples * 3.0 + 2 * (4000 + 1000 + 10000) * 1.0  # C alone: forward + backward
    assert rate_factor(Config.from_dict({"preset": "paper_mnist"})) == 0.5  # batch 16 vs the measured 32
    assert rate_factor(config) == 1.0
