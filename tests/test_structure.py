"""The import structure of docs/architecture.md, read from the source (``ast``: every import, the lazy ones
inside functions included), so that a cycle or a dependency the wrong way fails here first.

* the core (``raydaug`` except ``raydaug/tune/`` and ``raydaug/cli.py``) is pure PyTorch: no Ray, and it
  never imports ``analysis``, ``raydaug.tune`` or the CLI;
* only ``raydaug/tune/`` and ``raydaug/cli.py`` import Ray (of the packages; ``tune_configs`` build Tune
  search domains and the benchmarks drive Tune, they are not imported by the packages);
* ``analysis`` reads logs through the core: never ``raydaug.tune`` nor the CLI; ``raydaug.tune`` never
  imports ``analysis``; nothing imports ``raydaug.cli`` (but ``raydaug/__main__.py``, its other entry point);
* ``raydaug/errors.py`` is a leaf (imports nothing of the project) and holds every error and warning
  class (``bench`` keeps its own ``NotApplicable``, a signal between the bench runner and its modules).
"""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raydaug", "analysis", "tune_configs", "bench")
PROJECT = {"raydaug", "analysis", "tune_configs", "bench", "tests"}
EXCEPTION_NAMES = {name for name, value in vars(builtins).items()
                   if isinstance(value, type) and issubclass(value, BaseException)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from x import y`` counts as x and x.y)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


IMPORTS = {name: imports(name, path) for name, path in modules().items()}


def is_core(name: str) -> bool:
    return name.split(".")[0] == "raydaug" and not (name == "raydaug.cli" or name.startswith("raydaug.tune"))


def importing(prefix: str, among) -> list[tuple[str, str]]:
    return sorted((name, target) for name in among for target in IMPORTS[name]
                  if target == prefix or target.startswith(prefix + "."))


def test_every_package_module_was_parsed():
    for name in ("raydaug.config", "raydaug.errors", "raydaug.tune.plan", "raydaug.tune.storage",
                 "raydaug.tune.runner", "raydaug.cli", "analysis.load", "analysis.checkpoints",
                 "raydaug.logging.reader", "raydaug.schedule", "bench"):
        assert name in IMPORTS, name
    assert "raydaug.tune.trainable" in IMPORTS["raydaug.tune.runner"]  # relative and absolute forms resolve
    assert "raydaug.config" in IMPORTS["raydaug.train"]


def test_only_raydaug_tune_and_the_cli_import_ray():
    packages = [name for name in IMPORTS if name.split(".")[0] in ("raydaug", "analysis")]
    allowed = {name for name in packages if name == "raydaug.cli" or name.startswith("raydaug.tune")}
    assert importing("ray", set(packages) - allowed) == []
    assert importing("ray", allowed), "raydaug.tune imports Ray (else this test checks nothing)"


def test_nothing_imports_the_cli():
    """(``raydaug/__main__.py`` is the CLI's other entry point, ``python -m raydaug``.)"""
    assert importing("raydaug.cli", set(IMPORTS) - {"raydaug.cli", "raydaug.__main__"}) == []


def test_the_core_imports_neither_analysis_nor_raydaug_tune():
    core = {name for name in IMPORTS if is_core(name)}
    assert {"raydaug.train", "raydaug.logging.parquet", "raydaug.schedule"} <= core
    assert importing("analysis", core) == [] and importing("raydaug.tune", core) == []


def test_analysis_does_not_import_raydaug_tune_and_tune_does_not_import_analysis():
    analysis = {name for name in IMPORTS if name.split(".")[0] == "analysis"}
    tune = {name for name in IMPORTS if name.startswith("raydaug.tune")}
    assert importing("raydaug.tune", analysis) == []
    assert importing("analysis", tune) == []


def test_errors_is_a_leaf():
    ours = sorted(target for target in IMPORTS["raydaug.errors"] if target.split(".")[0] in PROJECT)
    assert ours == []


@pytest.mark.parametrize("name", sorted(IMPORTS))
def test_error_classes_live_in_raydaug_errors(name):
    if name == "raydaug.errors":
        return
    path = modules()[name]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
                 for base in node.bases}
        error_like = bases & EXCEPTION_NAMES or any(b.endswith(("Error", "Exception", "Warning")) for b in bases)
        if error_like and not (name == "bench" and node.name == "NotApplicable"):
            pytest.fail(f"{path.relative_to(ROOT)} defines the error class {node.name}: "
                        "it belongs in raydaug/errors.py")


def test_the_error_check_sees_error_classes():
    """The check above recognises an error class when there is one (it would not pass vacuously)."""
    classes = [node for node in ast.walk(ast.parse((ROOT / "raydaug" / "errors.py").read_text()))
               if isinstance(node, ast.ClassDef)]
    assert {"ConfigError", "UsageError", "PartFileWarning"} <= {node.name for node in classes}
    assert all({getattr(b, "id", "") for b in node.bases} & (EXCEPTION_NAMES | {c.name for c in classes})
               for node in classes)
