"""base_aug=auto: the pilot that chooses, on the split's validation images, the hand-made augmentation G stands on."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import raydaug
from raydaug.analysis.load import load
from raydaug.analysis.report import write_report
from raydaug.analysis.summary import trial_summary
from raydaug.config import Config
from raydaug.migrations import migrate
from raydaug.pilot_choice import PRIOR_Z, choose, paired_z
from raydaug.presets import HAND_MADE
from raydaug.train import Trainer, pilot, run_training
from tests.helpers import comparable, tiny

# four epochs, a pilot of two per hand-made augmentation, evaluated every epoch
PILOTED = {"epochs": 4, "pilot_share": 0.5, "checkpoint_every": 2, "base_aug": "auto"}


def _reports(trainer: Trainer) -> list[dict]:
    reports = []
    while not trainer.done:
        reports.append(comparable({key: value for key, value in trainer.train_iteration().items()
                                   if not key.startswith("time/")}))
    return reports


def test_auto_stands_g_on_the_pilots_choice_and_trains_exactly_as_that_choice():
    """The pilot runs in the first iteration, picks the validation-best of all eight hand-made augmentations,
    and puts the random state back: the run then trains bit for bit as one given base_aug=<choice>."""
    auto = Trainer(tiny(**PILOTED))
    assert auto.state.needs_pilot
    reports = _reports(auto)
    outcome = auto.state.pilot
    assert set(outcome["acc_val"]) == set(HAND_MADE) and outcome["epochs"] == 2
    best = max(outcome["acc_val"].values())
    leaders = [name for name in HAND_MADE if outcome["acc_val"][name] == best]
    assert outcome["val_best"] == max(leaders, key=lambda name: outcome["acc_val_last"][name])
    assert outcome["prior"] == "randaugment"  # the default
    assert outcome["choice"] == (outcome["val_best"] if outcome["z"] > PRIOR_Z else "randaugment")
    assert auto.take_pilot() is outcome and auto.take_pilot() is None  # logged once
    explicit = Trainer(tiny(**{**PILOTED, "base_aug": outcome["choice"]}))
    assert not explicit.state.needs_pilot
    assert _reports(explicit) == reports


def test_a_pilot_score_is_the_baseline_arms_best_validation_over_its_first_epochs():
    """Each candidate's pilot score is what the hand-made arm aug=X on the same split measures over its first
    pilot_share × epochs (the same seed, batches and evaluations): validation accuracy, not test."""
    config = tiny(epochs=4, pilot_share=0.75, checkpoint_every=1, base_aug="auto")
    reference = Trainer(config)
    outcome = pilot(config, reference.splits, reference.device)
    assert outcome["epochs"] == 3
    for name in ("light", "trivial"):
        arm = Trainer(config.replace(aug=name))
        vals = [arm.train_iteration()["acc/val"] for _ in range(3)]
        assert outcome["acc_val"][name] == max(vals) and outcome["acc_val_last"][name] == vals[-1]


def test_the_pilot_evaluates_only_the_validation_images(monkeypatch):
    """Training and test accuracy play no part in the choice, so the pilot does not compute them."""
    import raydaug.steps
    import raydaug.train

    config = tiny(epochs=2, pilot_share=1.0, checkpoint_every=1, base_aug="auto")
    splits = Trainer(config).splits
    real, evaluated = raydaug.steps.correct_predictions, []

    def recording(state, splits, images, labels, *args, **options):
        evaluated.append(images)
        return real(state, splits, images, labels, *args, **options)

    for module in (raydaug.steps, raydaug.train):  # where it is defined, and where the pilot calls it
        monkeypatch.setattr(module, "correct_predictions", recording, raising=False)
    pilot(config, splits, torch.device("cpu"))
    assert len(evaluated) == 2 * len(HAND_MADE)  # each candidate, each of its two evaluations
    assert all(images is splits.val.images for images in evaluated)


def _right(count: int, wrong: set[int]) -> torch.Tensor:
    return torch.tensor([index not in wrong for index in range(count)])


def test_the_prior_stays_unless_the_validation_best_beats_it_by_the_paired_test():
    """The validation-best replaces the prior only where McNemar's one-sided z on the images the two disagree
    on passes 1.645: 6 won and 1 lost (z 1.89) does; 4 won and 1 lost (z 1.34) does not, though it is the
    validation-best by one point; without a prior the validation-best is chosen whatever its margin."""
    prior = _right(300, set(range(10)))
    for won, chosen in ((6, "elastic"), (4, "randaugment")):
        challenger = _right(300, set(range(won, 10)) | {299})
        assert paired_z(challenger, prior) == pytest.approx((won - 1) / (won + 1) ** 0.5)
        correct = {"elastic": challenger, "randaugment": prior, "none": _right(300, set(range(40)))}
        best = {name: float(right.float().mean()) for name, right in correct.items()}
        outcome = choose(best, best, correct, ["none", "randaugment", "elastic"], "randaugment")
        assert (outcome["choice"], outcome["val_best"]) == (chosen, "elastic")
        assert choose(best, best, correct, ["none", "randaugment", "elastic"], "none")["choice"] == "elastic"
    # the prior itself validation-best: kept, with no test to run
    assert choose({"a": 0.9, "b": 0.8}, {"a": 0.9, "b": 0.8}, {}, ["a", "b"], "a")["choice"] == "a"


def test_a_restored_trial_keeps_its_pilot_and_runs_no_other(tmp_path):
    """The pilot travels in the checkpoint: a resumed (or exploiting) auto trial stands G where the
    checkpoint's did without a second pilot; a trial that names its base keeps its own."""
    first = Trainer(tiny(**PILOTED))
    first.train_iteration()
    first.save(tmp_path / "state.pt")
    resumed = Trainer(tiny(**PILOTED))
    resumed.restore(tmp_path / "state.pt")
    assert not resumed.state.needs_pilot and resumed.state.base_aug == first.state.base_aug
    resumed.train_iteration()
    assert resumed.take_pilot() is None
    other = "none" if first.state.base_aug != "none" else "light"
    named = Trainer(tiny(**{**PILOTED, "base_aug": other}))
    named.restore(tmp_path / "state.pt")
    assert named.state.base_aug == other


def test_the_run_logs_its_pilot_and_the_report_sets_it_beside_the_full_budget_arms(tmp_path, capsys):
    """`raydaug train` prints the pilot's choice and writes parquet/pilots; analyze compares the choice with
    the hand-made arm that the whole budget, on the same split, found best on validation."""
    run = tmp_path / "auto"
    run_training(tiny(**PILOTED), run)
    out = capsys.readouterr().out
    assert "base_aug=auto: pilot of 8 hand-made augmentations × 2 epochs" in out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("pilot ")] == \
        [f"pilot {k}/8" for k in range(1, 9)]  # progress while it runs
    logged = load(str(run)).pilots
    assert len(logged) == len(HAND_MADE) and logged["chosen"].sum() == 1 and logged["val_best"].sum() == 1
    choice = logged.loc[logged["chosen"], "base_aug"].item()
    assert logged["z"].notna().tolist() == logged["val_best"].tolist()  # z on the validation-best's row only
    # the arms as one baselines run (a run folder holds many trials); AugMix also at a magnitude the pilot did
    # not use, which must not count as the arm the pilot tried
    arms = {"none": {}, "light": {}, "augmix": {}, "augmix10": {"augmix_severity": 10}}
    for name, changes in arms.items():
        run_training(tiny(**PILOTED, aug=name[:6] if name.startswith("augmix") else name, **changes),
                     tmp_path / "auto_baselines" / name)
    baselines = tmp_path / "auto_baselines"
    for name in arms:
        for part in (baselines / name / "parquet").rglob("*.parquet"):
            target = baselines / part.relative_to(baselines / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            part.rename(target)
    _page, report = write_report(str(run), str(tmp_path / "report"))
    table = pd.read_csv(tmp_path / "report" / "pilots.csv")
    assert table["chosen"].tolist() == [choice]
    assert table["pilot_val_best"].tolist() == logged.loc[logged["val_best"], "base_aug"].tolist()
    arms_run = load(str(baselines))
    tried = trial_summary(arms_run)
    tried = tried[tried["trial_id"] != "augmix10"]
    order = {name: rank for rank, name in enumerate(HAND_MADE)}
    last = arms_run.metrics.groupby("trial_id", observed=True)["acc/val"].last().rename(index=str)
    best_arm = tried.assign(rank=tried["aug"].map(order), last=tried["trial_id"].astype(str).map(last)).sort_values(
        ["best_acc_val", "last", "rank"], ascending=[False, False, True]).iloc[0]
    assert table["full_budget_val_best"].item() == best_arm["aug"]
    assert table["agrees"].item() == (best_arm["aug"] == choice)
    if choice in set(tried["aug"]):
        assert table["chosen_full_acc_test"].item() == tried.set_index("aug").loc[choice, "test_at_best"]
    assert any("base_aug=auto" in section.title for section in report.sections)


def test_fit_from_python_says_what_the_pilot_chose():
    lines = []
    result = raydaug.fit(tiny(**PILOTED), log=lines.append)
    assert result.base_aug == result.payload["pilot"]["choice"] in HAND_MADE
    assert any(line.startswith("base_aug=auto: pilot") and result.base_aug in line for line in lines)
    assert raydaug.fit(tiny(**{**PILOTED, "epochs": 1, "base_aug": "none"}), log=None).base_aug == "none"


@pytest.mark.parametrize(("values", "base"), [
    ({"dataset": "digits", "train_per_class": 10}, "trivial"),
    ({"dataset": "digits", "train_per_class": 3}, "light"),
    ({"dataset": "mnist5k", "train_per_class": 55}, "strong"),
    ({"dataset": "cifar10", "train_per_class": 400}, "trivial"),
    ({"dataset": "mnist5k", "train_per_class": 55, "base_aug": "none"}, "none"),
    ({}, "trivial"),  # digits at 10 per class were the defaults then
])
def test_a_learned_run_of_config_version_2_reads_auto_as_the_rule_it_trained_with(values, base):
    assert migrate({**values, "aug": "learned", "config_version": 2})["base_aug"] == base
    assert Config.from_logged({**values, "config_version": 2}).base_aug == base


def test_a_learned_auto_run_of_config_version_3_had_no_prior():
    """Up to config version 3 the pilot chose the validation-best: such a learned trial reads pilot_prior=none,
    while a hand-made arm or a learned one that named its base keeps the default (nothing read it)."""
    assert Config.from_logged({"aug": "learned", "config_version": 3}).pilot_prior == "none"
    assert Config.from_logged({"aug": "learned", "config_version": 4}).pilot_prior == "randaugment"
    for values in ({"aug": "strong"}, {"aug": "learned", "base_aug": "elastic"}):
        assert Config.from_logged({**values, "config_version": 3}).pilot_prior == "randaugment"


def test_a_hand_made_arm_of_config_version_2_keeps_auto():
    """Nothing stood on a hand-made arm's base_aug: it stays as logged, so old and new arms stay one variant."""
    assert migrate({"aug": "strong", "base_aug": "auto", "config_version": 2})["base_aug"] == "auto"


def test_the_pilot_table_compares_with_the_arms_at_the_magnitudes_the_pilot_used(monkeypatch):
    """A hand-made arm at other magnitudes than the learned trial gave its pilot (here AugMix at severity 10
    beside the pilot's 3) is not the arm the pilot tried: neither the full-budget choice nor the chosen arm's
    score."""
    import raydaug.analysis.pilots as pilots
    from raydaug.analysis.load import RunData

    split = {"dataset": "digits", "train_per_class": 10, "seed": 1, "replicate": 0}
    summary = pd.DataFrame([
        {"trial_id": "L", "aug": "learned", "best_acc_val": 0.9, "test_at_best": 0.9, **split},
        {"trial_id": "A3", "aug": "augmix", "best_acc_val": 0.90, "test_at_best": 0.91, **split},
        {"trial_id": "A10", "aug": "augmix", "best_acc_val": 0.95, "test_at_best": 0.99, **split},
        {"trial_id": "Li", "aug": "light", "best_acc_val": 0.92, "test_at_best": 0.93, **split},
    ])
    configs = {"L": {"aug": "learned", "augmix_severity": 3}, "A3": {"aug": "augmix", "augmix_severity": 3},
               "A10": {"aug": "augmix", "augmix_severity": 10}, "Li": {"aug": "light", "augmix_severity": 3}}
    monkeypatch.setattr(pilots, "config_dicts", lambda run: configs)
    logged = pd.DataFrame([
        {"trial_id": "L", "timestamp": 1.0, "training_iteration": 1, "base_aug": name, "epochs": 5,
         "acc_val": score, "acc_val_last": score, "chosen": name == "augmix"}
        for name, score in (("augmix", 0.9), ("light", 0.8))])
    empty = pd.DataFrame()
    table = pilots.pilot_table(RunData("run", empty, empty, empty, [], logged), summary)
    row = table.iloc[0]
    assert (row["chosen"], row["full_budget_val_best"], row["agrees"]) == ("augmix", "light", False)
    assert (row["chosen_full_acc_test"], row["val_best_full_acc_test"]) == (0.91, 0.93)
    assert row["pilot_val_best"] == "augmix"  # logged before config version 4: the chosen one
    # an old run read with today's schema: the new columns are there, all null
    old = pilots.pilot_table(RunData("run", empty, empty, empty, [], logged.assign(val_best=None, z=None)), summary)
    assert old.iloc[0]["pilot_val_best"] == "augmix"
    # a prior kept over the pilot's validation-best: both named, each with its full-budget test accuracy
    prior_kept = logged.assign(chosen=logged["base_aug"] == "light", val_best=logged["base_aug"] == "augmix",
                               z=[1.2, None])
    row = pilots.pilot_table(RunData("run", empty, empty, empty, [], prior_kept), summary).iloc[0]
    assert (row["chosen"], row["pilot_val_best"], row["z"]) == ("light", "augmix", 1.2)
    assert (row["chosen_full_acc_test"], row["pilot_val_best_full_acc_test"]) == (0.93, 0.91)
    assert "prior was kept" in pilots.pilot_text(pd.DataFrame([row]))
    # two arms level on their best validation: the full-budget validation-best is the one with the better
    # last evaluation, as the pilot breaks the tie (not the earlier in HAND_MADE's order)
    level = summary.assign(best_acc_val=[0.9, 0.90, 0.95, 0.95])  # A10 (augmix) and Li (light) tie at 0.95
    metrics = pd.DataFrame({"trial_id": ["A10", "Li"], "training_iteration": [4, 4], "acc/val": [0.94, 0.92]})
    row = pilots.pilot_table(RunData("run", metrics, empty, empty, [], logged), level).iloc[0]
    assert row["full_budget_val_best"] == "light"  # A10 is not the arm the pilot tried (severity 10)
    configs["A10"]["augmix_severity"] = 3
    row = pilots.pilot_table(RunData("run", metrics, empty, empty, [], logged), level).iloc[0]
    assert row["full_budget_val_best"] == "augmix"  # light comes first in HAND_MADE; augmix's last is better
    configs["A10"]["augmix_severity"] = 10
    # a run without hand-made arms on the split: the pilot alone
    alone = pilots.pilot_table(RunData("run", empty, empty, empty, [], logged), summary.iloc[:1])
    assert alone.iloc[0]["chosen"] == "augmix" and alone.iloc[0]["full_budget_val_best"] is None
