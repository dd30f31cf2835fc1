"""Your own data and classifier, and the model handed back: folders (layout, cache, bad input), arrays and
Datasets from Python, ``classifier=torchvision:<name>`` / ``<module>:<factory>``, export and predict."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from raydaug import folder as folder_module
from raydaug import images as images_module
from raydaug.errors import ConfigError, DataError
from raydaug.export import export_classifier, image_files, load_exported, predict_files, write_predictions
from raydaug.folder import load_folder, scan_folder
from raydaug.images import from_arrays, from_dataset
from raydaug.nets.classifier import build_classifier
from tests.folders import write_folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYDAUG_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------- folders: layout
def test_the_folder_index_matches_the_layout_exactly(tmp_path):
    counts = {"zebra": 5, "ant": 2, "moth": 9}
    root = write_folder(tmp_path / "d", counts, {"ant": 3, "zebra": 1})
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    (root / "train" / "ant" / ".hidden.png").write_bytes(b"")
    nested = root / "train" / "moth" / "more"
    nested.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(nested / "extra.bmp")
    index = scan_folder(root)
    assert index.class_names == ("ant", "moth", "zebra")  # sorted folder names are the class ids
    per_class = {name: sum(1 for _, label in index.train if label == k) for k, name in enumerate(index.class_names)}
    assert per_class == {"ant": 2, "moth": 10, "zebra": 5}
    assert sorted((p.parent.name, label) for p, label in index.test) == [("ant", 0)] * 3 + [("zebra", 2)]
    assert [p.name for p in index.skipped] == ["notes.txt"]
    for path, label in index.train:
        assert path.relative_to(root / "train").parts[0] == index.class_names[label]


def test_grey_and_colour_are_detected_and_a_mixed_folder_is_colour(tmp_path):
    grey = load_folder(write_folder(tmp_path / "g", {"a": 2, "b": 2}), 16)
    colour = load_folder(write_folder(tmp_path / "c", {"a": 2, "b": 2}, colour=True), 16)
    mixed_root = write_folder(tmp_path / "m", {"a": 2, "b": 2})
    Image.fromarray(np.zeros((9, 13, 3), np.uint8)).save(mixed_root / "train" / "b" / "rgb.png")
    mixed = load_folder(mixed_root, 16)
    assert grey.channels == 1 and colour.channels == 3 and mixed.channels == 3
    assert grey.images.dtype == torch.uint8 and tuple(grey.images.shape) == (4, 1, 16, 16)
    assert tuple(mixed.images.shape) == (5, 3, 16, 16)  # any source size, resized to image_size


def test_decoding_matches_pillow_resize_for_training_and_prediction(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    expected = np.asarray(Image.fromarray(array).resize((16, 16), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(images_module.decode_image(path, 16, 3), expected)


# ---------------------------------------------------------------------- folders: the cache
def test_a_second_load_reads_the_cache_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3})
    first = load_folder(root, 16)
    calls = []
    real = folder_module.decode_image
    monkeypatch.setattr(folder_module, "decode_image", lambda *a: calls.append(a) or real(*a))
    again = load_folder(root, 16)
    assert calls == [] and torch.equal(again.images, first.images) and again.class_names == first.class_names
    load_folder(root, 8)  # another image size is another cache entry
    assert len(calls) == 6
    calls.clear()
    changed = root / "train" / "a" / "0000.png"
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    third = load_folder(root, 16)
    assert len(calls) == 6 and not torch.equal(third.images, first.images)


def test_a_folder_that_does_not_fit_in_memory_is_refused_with_its_size(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3})
    monkeypatch.setattr(folder_module, "available_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"6 images of 1×16×16 need 0\.00 GiB"):
        load_folder(root, 16)


# ---------------------------------------------------------------------- folders: bad input
def _corrupt(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, message", [
    ("no_train", "no train/ folder"),
    ("empty_class", "class 'b' has no image files"),
    ("one_class", "needs at least 2 class folders, found 1"),
    ("corrupt", r"cannot decode image .*train/a/0000\.png"),
    ("truncated", r"cannot decode image .*train/a/0001\.jpg"),
    ("test_class", "test class 'z' .* is not a class of train/"),
])
def test_bad_folders_fail_with_one_line_naming_the_problem(tmp_path, damage, message):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3}, {"a": 1})
    if damage == "no_train":
        (root / "train").rename(root / "training")
    elif damage == "empty_class":
        for path in (root / "train" / "b").iterdir():
            path.unlink()
        (root / "train" / "b" / "readme.txt").write_text("x")
    elif damage == "one_class":
        for path in (root / "train" / "b").iterdir():
            path.unlink()
        (root / "train" / "b").rmdir()
    elif damage == "corrupt":
        _corrupt(root / "train" / "a" / "0000.png")
    elif damage == "truncated":
        _truncated(root / "train" / "a" / "0001.jpg")
    elif damage == "test_class":
        write_folder(tmp_path / "other", {"z": 1})
        (tmp_path / "other" / "train" / "z").rename(root / "test" / "z")
    with pytest.raises(DataError, match=message) as error:
        load_folder(root, 16)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


# ---------------------------------------------------------------------- arrays and Datasets
def test_arrays_uint8_and_float_load_with_names_and_a_test_set():
    images = np.random.default_rng(0).integers(0, 256, (6, 12, 12), dtype=np.uint8)
    data = from_arrays(images, [0, 1, 2, 0, 1, 2], test_images=images[:2] / 255.0, test_labels=[1, 0],
                       class_names=["x", "y", "z"])
    assert data.class_names == ("x", "y", "z") and data.channels == 1 and data.images.dtype == torch.float32
    assert torch.allclose(data.test_images, data.images[:2])
    assert from_arrays(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 1, 0])).class_names == ("0", "1")


@pytest.mark.parametrize("images, labels, kwargs, message", [
    (np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 0, 1], {}, r"shape \(N, H, W\) or \(N, C, H, W\)"),
    (np.zeros((4, 8, 8), np.int32), [0, 1, 0, 1], {}, "must be uint8 .* or float"),
    (np.full((4, 8, 8), np.nan, np.float32), [0, 1, 0, 1], {}, "NaN"),
    (np.full((4, 8, 8), 3.0, np.float32), [0, 1, 0, 1], {}, r"must lie in \[0, 1\]"),
    (np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 2], {"class_names": ["a", "b"]}, r"outside \[0, 2\)"),
    (np.zeros((4, 8, 8), np.uint8), [0, 1, 0, -1], {}, "outside"),
    (np.zeros((4, 8, 8), np.uint8), [0, 1, 0], {}, "3 entries for 4 images"),
    (np.zeros((4, 8, 8), np.uint8), [0.5, 1, 0, 1], {}, "integer class ids"),
    (np.zeros((4, 8, 8), np.uint8), [0, 0, 0, 0], {}, "at least 2 classes"),
    (np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 1], {"test_images": np.zeros((2, 8, 8), np.uint8)}, "go together"),
])
def test_bad_arrays_are_refused_naming_what_is_wrong(images, labels, kwargs, message):
    with pytest.raises(DataError, match=message):
        from_arrays(images, labels, **kwargs)


def test_a_map_style_dataset_reads_once_with_its_classes():
    class Pictures(torch.utils.data.Dataset):
        classes = ["left", "right"]

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return Image.fromarray(np.full((10, 10), index * 60, np.uint8)), index % 2

    data = from_dataset(Pictures())
    assert data.class_names == ("left", "right") and tuple(data.images.shape) == (4, 1, 10, 10)
    assert data.labels.tolist() == [0, 1, 0, 1] and int(data.images[3].max()) == 180


# ---------------------------------------------------------------------- your classifier
def test_a_torchvision_classifier_is_built_for_the_data_channels_and_classes():
    model = build_classifier("torchvision:resnet18", 1, 12, 16)
    assert model(torch.rand(3, 1, 16, 16)).shape == (3, 12)
    assert model.conv1.in_channels == 1


def _write_factory_module(tmp_path, monkeypatch, body: str) -> None:
    (tmp_path / "my_nets.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_nets", None)


def test_a_user_factory_gets_the_data_shape(tmp_path, monkeypatch):
    _write_factory_module(tmp_path, monkeypatch, """
        from torch import nn
        seen = {}
        def tiny(channels, num_classes, image_size):
            seen.update(channels=channels, num_classes=num_classes, image_size=image_size)
            return nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size * image_size, num_classes))
    """)
    model = build_classifier("my_nets:tiny", 3, 5, 8)
    import my_nets
    assert my_nets.seen == {"channels": 3, "num_classes": 5, "image_size": 8}
    assert model(torch.rand(4, 3, 8, 8)).shape == (4, 5)


@pytest.mark.parametrize("spec, body, message", [
    ("torchvision:not_a_model", "", "not a classification model of torchvision.models"),
    ("no_such_module_x:make", "", "cannot import module 'no_such_module_x'"),
    ("my_nets:missing", "x = 1", "has no callable 'missing'"),
    ("my_nets:make", "def make(**kw): return 3", "returned int, not a torch.nn.Module"),
    ("my_nets:make", "from torch import nn\ndef make(channels, num_classes, image_size):\n"
                     "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))",
     r"gives \(2, 4\) in training mode, expected logits of shape \(2, 3\)"),
    ("my_nets:make", "from torch import nn\ndef make(channels, num_classes, image_size):\n"
                     "    return nn.Linear(5, num_classes)", "batch fails in training mode"),
    ("bad spec!", "", "is not allowed"),
])
def test_a_bad_classifier_fails_before_training_naming_the_key(tmp_path, monkeypatch, spec, body, message):
    if body:
        _write_factory_module(tmp_path, monkeypatch, body)
    with pytest.raises(ConfigError, match=message) as error:
        build_classifier(spec, 1, 3, 8)
    assert str(error.value).startswith("classifier=")


# ---------------------------------------------------------------------- export and predict
@pytest.mark.parametrize("spec", ["small", "badgan", "torchvision:resnet18"])
def test_an_exported_classifier_equals_the_framework_at_any_batch_size(tmp_path, spec):
    torch.manual_seed(0)
    classifier = build_classifier(spec, 1, 3, 16).eval()
    mean, std = torch.tensor([0.2]), torch.tensor([0.3])
    path = export_classifier(classifier, mean, std,
                             {"image_size": 16, "channels": 1, "class_names": ["a", "b", "c"]}, tmp_path / "m.pt2")
    model, meta = load_exported(path)
    assert meta["class_names"] == ["a", "b", "c"]
    for batch in (1, 7):
        x = torch.rand(batch, 1, 16, 16)
        with torch.no_grad():
            assert torch.allclose(model(x), classifier((x - 0.2) / 0.3), atol=1e-5)


def test_an_exported_model_loads_in_a_process_that_cannot_import_raydaug(tmp_path):
    classifier = build_classifier("small", 3, 2, 8).eval()
    path = export_classifier(classifier, torch.zeros(3), torch.ones(3),
                             {"image_size": 8, "channels": 3, "class_names": ["no", "yes"]}, tmp_path / "m.pt2")
    x = torch.rand(5, 3, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = classifier(x)
    script = f"""
        import sys, json
        sys.modules["raydaug"] = None  # any import of raydaug now fails
        import torch
        extra = {{"raydaug.json": ""}}
        model = torch.export.load({str(path)!r}, extra_files=extra).module()
        out = model(torch.load({str(tmp_path / 'x.pt')!r}))
        torch.save(out, {str(tmp_path / 'out.pt')!r})
        print(json.loads(extra["raydaug.json"])["class_names"])
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "['no', 'yes']" in done.stdout
    assert torch.allclose(torch.load(tmp_path / "out.pt"), expected, atol=1e-5)


def test_predict_reads_files_and_folders_and_refuses_a_non_image(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 2, "b": 3})
    (root / "train" / "a" / "notes.txt").write_text("x")
    files = image_files([root / "train" / "a", root / "train" / "b" / "0000.png"])
    assert [f.name for f in files] == ["0000.png", "0001.jpg", "0000.png"]
    with pytest.raises(DataError, match="not an image file"):
        image_files([root / "train" / "a" / "notes.txt"])
    with pytest.raises(DataError, match="no such file"):
        image_files([root / "nothing"])
    classifier = build_classifier("small", 1, 2, 16).eval()
    path = export_classifier(classifier, torch.zeros(1), torch.ones(1),
                             {"image_size": 16, "channels": 1, "class_names": ["a", "b"]}, tmp_path / "m.pt2")
    model, meta = load_exported(path)
    rows = predict_files(model, meta, files)
    decoded = torch.stack([torch.from_numpy(images_module.decode_image(f, 16, 1)) for f in files]).float() / 255
    with torch.no_grad():
        probabilities = classifier(decoded).softmax(1)
    assert [r[1] for r in rows] == [meta["class_names"][k] for k in probabilities.argmax(1)]
    assert np.allclose([r[2] for r in rows], probabilities.max(1).values.numpy(), atol=1e-5)
    write_predictions(rows, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "path,label,probability"


def test_a_file_that_is_not_an_exported_model_is_refused(tmp_path):
    (tmp_path / "m.pt2").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a model exported by `raydaug export`"):
        load_exported(tmp_path / "m.pt2")


def test_export_keeps_nn_module_forward_semantics():
    """The deployed wrapper normalises inside (a user passes [0, 1] images)."""
    from raydaug.export import Normalized

    wrapped = Normalized(nn.Identity(), torch.tensor([0.5]), torch.tensor([0.25]))
    assert torch.allclose(wrapped(torch.ones(1, 1, 2, 2)), torch.full((1, 1, 2, 2), 2.0))
