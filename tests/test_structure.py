"""The import structure of docs/architecture.md, read from the source (``ast``: every import, the lazy ones
inside functions and the type-only ones under ``if TYPE_CHECKING:`` included), so that a cycle or a
dependency the wrong way fails here first.

* no import cycle among the project's modules, not even a type-only one;
* the core (``raydaug`` except ``raydaug.tune``, ``raydaug.cli``, ``raydaug.analysis`` and
  ``raydaug.tune_configs``) is pure PyTorch: no Ray, and it never imports ``raydaug.analysis``,
  ``raydaug.tune``, ``raydaug.tune_configs`` or the CLI;
* only ``raydaug.tune`` and ``raydaug.cli`` import Ray (of the packages; ``raydaug.tune_configs`` build Tune
  search domains and the benchmarks drive Tune, they are not imported by the packages);
* ``raydaug.analysis`` reads logs through the core: never ``raydaug.tune`` nor the CLI; ``raydaug.tune`` never
  imports ``raydaug.analysis``; nothing imports ``raydaug.cli`` (but ``raydaug/__main__.py``, its other entry
  point);
* ``raydaug/errors.py`` is a leaf (imports nothing of the project) and holds every error and warning
  class (``bench`` keeps its own ``NotApplicable``, a signal between the bench runner and its modules).

The folders ``analysis/`` and ``tune_configs/`` install as ``raydaug.analysis`` and ``raydaug.tune_configs``
(pyproject.toml ``[tool.setuptools.package-dir]``): their modules are named by the package they install as.
"""
from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder → the package it installs as (the tests are not a package: they import as ``tests`` from the root)
PACKAGES = {"raydaug": "raydaug", "analysis": "raydaug.analysis", "tune_configs": "raydaug.tune_configs",
            "bench": "bench", "tests": "tests"}
PROJECT = {"raydaug", "analysis", "tune_configs", "bench", "tests"}
NOT_CORE = ("raydaug.tune", "raydaug.cli", "raydaug.__main__", "raydaug.analysis", "raydaug.tune_configs")
EXCEPTION_NAMES = {name for name, value in vars(builtins).items()
                   if isinstance(value, type) and issubclass(value, BaseException)}


def module_name(path: Path) -> str:
    folder, *parts = path.relative_to(ROOT).with_suffix("").parts
    parts = [*PACKAGES[folder].split("."), *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for folder in PACKAGES for path in sorted((ROOT / folder).rglob("*.py"))}


def imports_in(source: str, name: str, is_package: bool) -> set[str]:
    """Every module the source of module ``name`` imports, anywhere in it (absolute names; ``from x import
    y`` counts as x and x.y)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
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


def imports(name: str, path: Path) -> set[str]:
    return imports_in(path.read_text(), name, path.name == "__init__.py")


IMPORTS = {name: imports(name, path) for name, path in modules().items()}


def is_core(name: str) -> bool:
    return name.split(".")[0] == "raydaug" and not any(name == prefix or name.startswith(prefix + ".")
                                                       for prefix in NOT_CORE)


def importing(prefix: str, among) -> list[tuple[str, str]]:
    return sorted((name, target) for name in among for target in IMPORTS[name]
                  if target == prefix or target.startswith(prefix + "."))


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module → the project modules it imports) as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every path from it is explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def project_graph() -> dict[str, set[str]]:
    return {name: {target for target in targets if target in IMPORTS and target != name}
            for name, targets in IMPORTS.items()}


def test_no_import_cycle_among_the_project_modules():
    cycle = find_cycle(project_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_check_sees_type_only_and_lazy_imports():
    """The parser finds an import under ``if TYPE_CHECKING:`` and one inside a function, and the cycle
    search finds the cycle they close (the check would not pass vacuously)."""
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from raydaug.tune.plan import TunePlan\n"
              "def f():\n    from .storage import make_run_dir\n")
    found = imports_in(source, "raydaug.tune.cluster", is_package=False)
    assert {"raydaug.tune.plan", "raydaug.tune.storage"} <= found
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_modules_are_named_by_the_package_they_install_as():
    assert {"raydaug.analysis.load", "raydaug.tune_configs.smoke", "raydaug.tune.plan", "bench",
            "tests.helpers"} <= set(IMPORTS)
    assert not [name for name in IMPORTS if name.split(".")[0] in ("analysis", "tune_configs")]
    stale = sorted((name, target) for name, targets in IMPORTS.items() for target in targets
                   if target.split(".")[0] in ("analysis", "tune_configs"))
    assert stale == [], "import raydaug.analysis / raydaug.tune_configs by their installed names"
    assert not is_core("raydaug.analysis.load") and not is_core("raydaug.tune_configs.smoke")
    assert not is_core("raydaug.tune.plan") and not is_core("raydaug.cli")
    assert is_core("raydaug.config") and is_core("raydaug.overrides") and is_core("raydaug.nets.generator")


def test_every_package_module_was_parsed():
    for name in ("raydaug.config", "raydaug.errors", "raydaug.tune.plan", "raydaug.tune.storage",
                 "raydaug.tune.runner", "raydaug.cli", "raydaug.analysis.load", "raydaug.analysis.checkpoints",
                 "raydaug.logging.reader", "raydaug.schedule", "bench"):
        assert name in IMPORTS, name
    assert "raydaug.tune.trainable" in IMPORTS["raydaug.tune.runner"]  # relative and absolute forms resolve
    assert "raydaug.config" in IMPORTS["raydaug.train"]


def test_only_raydaug_tune_and_the_cli_import_ray():
    packages = [name for name in IMPORTS if name.split(".")[0] == "raydaug"
                and not name.startswith("raydaug.tune_configs")]
    allowed = {name for name in packages if name in ("raydaug.cli", "raydaug.tune") or name.startswith("raydaug.tune.")}
    assert importing("ray", set(packages) - allowed) == []
    assert importing("ray", allowed), "raydaug.tune imports Ray (else this test checks nothing)"


def test_nothing_imports_the_cli():
    """(``raydaug/__main__.py`` is the CLI's other entry point, ``python -m raydaug``; the tests drive it.)"""
    importers = {name for name in IMPORTS if name.split(".")[0] != "tests"} - {"raydaug.cli", "raydaug.__main__"}
    assert importing("raydaug.cli", importers) == []


def test_the_core_imports_neither_analysis_nor_raydaug_tune():
    core = {name for name in IMPORTS if is_core(name)}
    assert {"raydaug.train", "raydaug.logging.parquet", "raydaug.schedule"} <= core
    for outside in ("raydaug.analysis", "raydaug.tune", "raydaug.tune_configs", "raydaug.cli"):
        assert importing(outside, core) == [], outside


def test_analysis_does_not_import_raydaug_tune_and_tune_does_not_import_analysis():
    analysis = {name for name in IMPORTS if name.startswith("raydaug.analysis")}
    tune = {name for name in IMPORTS if name == "raydaug.tune" or name.startswith("raydaug.tune.")}
    assert analysis and tune
    assert importing("raydaug.tune", analysis) == [] and importing("raydaug.cli", analysis) == []
    assert importing("raydaug.analysis", tune) == []


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
