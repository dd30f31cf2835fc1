"""Your data end to end: a folder (or arrays) through training, with your classifier, to an exported model whose
predictions reproduce the run's reported test accuracy."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import raydaug
from raydaug.config import Config
from raydaug.data import load_splits
from raydaug.errors import ConfigError
from tests.folders import write_folder

TINY = {"image_size": 16, "ngf": 4, "noise_dim": 8, "batch_size": 12, "eval_every": 5, "checkpoint_every": 5,
        "lr_c": 3e-3}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYDAUG_CACHE", str(tmp_path / "cache"))


def folder_config(root, **keys) -> Config:
    return Config.from_dict({"dataset": "folder", "data_dir": str(root), **TINY, **keys})


# ---------------------------------------------------------------------- splits of a folder
def test_a_folder_split_keeps_the_per_class_rules_and_its_test_folder(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 9, "b": 14, "c": 7}, {"a": 2, "b": 3, "c": 1})
    splits = load_splits(folder_config(root, train_per_class=4, val_per_class=2))
    assert splits.class_names == ("a", "b", "c") and splits.num_classes == 3
    assert torch.bincount(splits.train.labels).tolist() == [4, 4, 4]
    assert torch.bincount(splits.val.labels).tolist() == [2, 2, 2]
    assert torch.bincount(splits.test.labels).tolist() == [2, 3, 1]  # the test/ folder, whole
    every = load_splits(folder_config(root, train_per_class=0, val_per_class=2))
    assert torch.bincount(every.train.labels).tolist() == [7, 12, 5]  # all a class has left after validation


def test_without_test_folder_the_test_split_is_what_train_and_val_leave(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 9, "b": 14})
    splits = load_splits(folder_config(root, train_per_class=4, val_per_class=2))
    assert torch.bincount(splits.test.labels).tolist() == [3, 8]
    rest = load_splits(folder_config(root, train_per_class=0, val_per_class=2, test_per_class=3))
    assert torch.bincount(rest.train.labels).tolist() == [4, 9]
    assert torch.bincount(rest.test.labels).tolist() == [3, 3]
    with pytest.raises(ConfigError, match="leaves no test image"):
        load_splits(folder_config(root, train_per_class=0, val_per_class=2))


def test_a_class_that_cannot_meet_the_counts_is_named_with_its_count(tmp_path):
    root = write_folder(tmp_path / "d", {"apple": 9, "pear": 3})
    with pytest.raises(ConfigError, match="class 'pear' has only 3 images"):
        load_splits(folder_config(root, train_per_class=2, val_per_class=2))


# ---------------------------------------------------------------------- your classifier trains
@pytest.mark.parametrize("classifier", ["torchvision:resnet18", "my_factory_nets:mlp"])
def test_your_classifier_trains_with_the_learned_augmentation_above_chance(tmp_path, monkeypatch, classifier):
    (tmp_path / "my_factory_nets.py").write_text(textwrap.dedent("""
        from torch import nn
        def mlp(channels, num_classes, image_size):
            return nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size * image_size, 64),
                                 nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, num_classes))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    root = write_folder(tmp_path / "d", dict.fromkeys("abc", 16), colour=True)
    result = raydaug.fit(folder_config(root, train_per_class=10, val_per_class=3, epochs=20,
                                       classifier=classifier), log=None)
    assert result.config.aug == "learned" and result.class_names == ("a", "b", "c")
    assert result.best["acc/val"] > 0.6 and result.history["acc/test"].iloc[-1] > 0.5  # chance: 1/3
    assert result.history["aug/label_kept"].notna().all()  # G ran through the user's C (eval mode) and teacher


# ---------------------------------------------------------------------- export and predict
def test_export_then_predict_reproduces_the_reported_test_accuracy(tmp_path):
    root = write_folder(tmp_path / "d", dict.fromkeys(["cat", "dog", "eel"], 14),
                        {"cat": 5, "dog": 5, "eel": 5})
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "raydaug", "train", "--out", str(run), "--set", "dataset=folder",
                           "--set", f"data_dir={root}", "--set", "train_per_class=10", "--set", "val_per_class=4",
                           "--set", "epochs=10", *[f"--set={k}={v}" for k, v in TINY.items()]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    best = json.loads((run / "result.json").read_text())["best"]
    model_file = tmp_path / "model.pt2"
    exported = subprocess.run([sys.executable, "-m", "raydaug", "export", str(run), "--out", str(model_file)],
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "validation-best" in exported.stdout and f"acc/test {best['acc/test']:.4f}" in exported.stdout
    predicted = subprocess.run([sys.executable, "-m", "raydaug", "predict", str(model_file), str(root / "test"),
                                "--out", str(tmp_path / "p.csv")], capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    with open(tmp_path / "p.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15 and set(rows[0]) == {"path", "label", "probability"}
    correct = sum(row["label"] == row["path"].split("/")[-2] for row in rows)
    assert abs(correct - best["acc/test"] * 15) < 1.0  # to one image


def test_export_without_a_checkpoint_fails_on_one_line(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 8, "b": 8})
    run = tmp_path / "run"
    raydaug.fit(folder_config(root, train_per_class=4, val_per_class=2, epochs=5, aug="none"), out=run, log=None)
    (run / "checkpoints" / "state.pt").unlink()
    done = subprocess.run([sys.executable, "-m", "raydaug", "export", str(run), "--out", str(tmp_path / "m.pt2")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no checkpoint" in done.stderr and not (tmp_path / "m.pt2").exists()
    assert len(done.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------- data from Python
def test_fit_on_arrays_returns_results_and_writes_nothing_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    images = rng.random((60, 12, 12)).astype(np.float32) * 0.3
    for i, label in enumerate(labels):
        images[i, 4 * label:4 * label + 3] = 1.0
    result = raydaug.fit(images=images, labels=labels, class_names=["x", "y", "z"], train_per_class=10,
                         val_per_class=4, epochs=10, aug="strong", log=None, **TINY)
    assert result.config.dataset == "memory" and result.class_names == ("x", "y", "z")
    assert list(result.history["epoch"]) == [5, 10] and result.best["acc/val"] > 0.5
    assert list(tmp_path.iterdir()) == []  # nothing written behind the user's back
    model = result.export(tmp_path / "m.pt2")
    loaded = torch.export.load(str(model)).module()
    assert loaded(torch.rand(4, 1, 16, 16)).shape == (4, 3)


def test_a_twelve_class_imbalanced_folder_splits_per_class_and_trains_every_class(tmp_path):
    counts = {f"class_{k:02d}": 4 + k for k in range(12)}  # 4 … 15 images: imbalanced
    root = write_folder(tmp_path / "d", counts, size=12)
    splits = load_splits(folder_config(root, train_per_class=0, val_per_class=1, test_per_class=2))
    assert splits.num_classes == 12 and splits.class_names == tuple(sorted(counts))
    assert torch.bincount(splits.train.labels).tolist() == [n - 3 for n in counts.values()]
    assert torch.bincount(splits.val.labels).tolist() == [1] * 12
    assert torch.bincount(splits.test.labels).tolist() == [2] * 12
    result = raydaug.fit(folder_config(root, train_per_class=0, val_per_class=1, test_per_class=2, epochs=5,
                                       aug="light"), log=None)
    assert result.payload["data"]["class_names"] == sorted(counts)
    assert result.export(tmp_path / "m.pt2").is_file()
