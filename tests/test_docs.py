"""The docs work when followed literally: the README's results table is generated from a run folder (and
regenerated identically), every relative link in README.md and docs/*.md resolves (file and heading), and
every `raydaug …` command they show parses with the real CLI and names a tune_config that exists."""
from __future__ import annotations

import importlib.util
import math
import re
import shlex
from pathlib import Path

import pytest

import raydaug.analysis as analysis
from raydaug.analysis import companions
from raydaug.cli import build_parser, main
from raydaug.config import Config
from tests.test_report_method import HEALTHY, scored, write_trial

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _script():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "scripts" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results_table = _script()


# ---------------------------------------------------------------------- the README's results table
@pytest.fixture()
def defaults_run(tmp_path) -> Path:
    """mnist5k 55/class, splits 0-2. Strong 97, 98, 96 (errors 3, 2, 4: mean 97), best on validation; light
    96 on every split; the learned defaults 98, 98.5, 96.5 (errors 2, 1.5, 3.5: mean 97.67, 2/9 less error
    than strong, ahead on all three splits), every G healthy. The baselines live in the follow-up stage
    RUN_baselines, as `raydaug tune` writes them."""
    run = tmp_path / "defaults_mnist5k"
    common = {"dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50, "image_size": 16}
    for seed, (strong, learned) in enumerate([(0.97, 0.98), (0.98, 0.985), (0.96, 0.965)]):
        write_trial(tmp_path / "defaults_mnist5k_baselines", f"strong_{seed}",
                    {**common, "aug": "strong", "seed": seed}, scored(strong, best_val=0.95))
        write_trial(tmp_path / "defaults_mnist5k_baselines", f"light_{seed}",
                    {**common, "aug": "light", "seed": seed}, scored(0.96))
        write_trial(run, f"learned_{seed}", {**common, "seed": seed}, scored(learned, HEALTHY))
    return run


def _merged(run_dir: Path) -> analysis.RunData:
    """The run with its follow-up stage's baselines, as `raydaug analyze` reads it."""
    return companions.gather(analysis.load(str(run_dir)))[0]


def _cells(table: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split(" | ") for line in table.splitlines()[2:]]
    return {row[1].strip().strip("*"): [cell.strip() for cell in row] for row in rows}


def test_the_results_table_shows_the_comparison_of_the_run_and_its_baselines(defaults_run):
    table = results_table.results_table(str(defaults_run))
    header, separator, *rows = table.splitlines()
    assert header.count("|") == separator.count("|") and len(rows) == 3
    assert rows[0].startswith("| mnist5k, 55/class | **learned** |"), "the learned augmentation comes first"
    summary = results_table.comparison(results_table.trial_summary(_merged(defaults_run))).set_index("aug")
    assert set(summary["best_hand_made"]) == {"strong"}, "the hand-made augmentation best on validation"
    cells = _cells(table)
    learned = summary.loc["learned"]
    assert learned["acc_test_mean"] == pytest.approx(97.5 + 1 / 6)
    assert cells["learned"][2] == f"{learned['acc_test_mean']:.2f} ± {learned['acc_test_std']:.2f}" == "97.67 ± 1.04"
    assert learned["error_change_vs_best_hand_made"] == pytest.approx(-2 / 9)
    assert cells["learned"][3] == "-22.2 %"
    low, high = learned["error_change_ci_low"], learned["error_change_ci_high"]
    assert math.isfinite(low) and low <= -2 / 9 <= high
    assert cells["learned"][4] == f"{low * 100:+.1f} % to {high * 100:+.1f} %"
    assert learned["probability_of_improvement"] == 1.0  # ahead on all three splits
    assert cells["learned"][5] == "1.00 [1.00, 1.00]"
    assert cells["learned"][6:] == ["3 (3 / 0)", "3", "3 / 3"]
    assert cells["strong"][2:] == ["97.00 ± 1.00", "best hand-made", "–", "–", "3", "3", "–"]
    assert cells["light"][2:4] == ["96.00 ± 0.00", f"{(4 - 3) / 3 * 100:+.1f} %"]
    assert cells["light"][5].startswith(f"{0.5 / 3:.2f} ["), "behind on two splits, level (½) on one"
    assert cells["light"][6] == "3 (0 / 2)", "light is behind strong on splits 0 and 1, level on 2"


def test_the_readme_block_is_replaced_and_regenerated_identically(defaults_run, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n\n<!-- results:begin -->\nplaceholder\n<!-- results:end -->\n\nafter\n")
    assert results_table.main([str(defaults_run), "--readme", str(readme)]) == 0
    first = readme.read_text()
    table = results_table.results_table(str(defaults_run))
    assert "placeholder" not in first and table in first
    assert first.startswith("# x\n\nbefore\n\n<!-- results:begin -->\n") and first.endswith(
        "<!-- results:end -->\n\nafter\n")
    assert f"scripts/results_table.py {defaults_run} --readme README.md" in first
    assert table in capsys.readouterr().out
    assert results_table.main([str(defaults_run), "--readme", str(readme)]) == 0
    assert readme.read_text() == first
    assert "already up to date" in capsys.readouterr().err


def test_a_readme_without_one_results_block_is_refused_and_left_alone(defaults_run, tmp_path, capsys):
    readme = tmp_path / "README.md"
    for text in ("no markers\n", "<!-- results:end -->\n<!-- results:begin -->\n",
                 "<!-- results:begin -->\n<!-- results:end -->\n<!-- results:begin -->\n<!-- results:end -->\n"):
        readme.write_text(text)
        assert results_table.main([str(defaults_run), "--readme", str(readme)]) == 2
        assert readme.read_text() == text
        assert "results_table: error:" in capsys.readouterr().err


def test_the_readme_shows_the_command_that_generates_its_results_block():
    text = (ROOT / "README.md").read_text()
    assert text.count(results_table.BEGIN) == 1 and text.count(results_table.END) == 1
    assert "scripts/results_table.py" in text


# ---------------------------------------------------------------------- links
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (links and headings there are not Markdown)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        kept.append("" if fenced else line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters, digits, ``-`` and ``_`` kept,
    in any script), each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base, n = slug(match[1]), 0
            while (candidate := base if n == 0 else f"{base}-{n}") in found:  # GitHub numbers repeats
                n += 1
            found.add(candidate)
    return found


def test_the_heading_anchors_are_githubs():
    assert slug("Six more fresh splits on each dataset: about 8 % on digits") == \
        "six-more-fresh-splits-on-each-dataset-about-8--on-digits"
    assert slug("`auto` by size: 3 per class") == "auto-by-size-3-per-class"
    assert slug("γ's form and the noise's scale") == "γs-form-and-the-noises-scale"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links() -> list[tuple[Path, str]]:
    return [(doc, target) for doc in DOCS for target in LINK.findall(_prose(doc.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", target)]


def test_every_relative_link_of_the_readme_and_docs_resolves_to_a_file_and_heading():
    links = _links()
    assert len(links) > 50, "the link pattern finds the docs' links"
    broken = []
    for doc, target in links:
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{doc.name}: {target} (no such file)")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []


def test_a_broken_link_or_anchor_would_be_caught(tmp_path):
    """The check itself: a missing heading is not among the anchors, a present one is."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section: with punctuation\n\n```\n# not a heading\n```\n")
    assert anchors(page) == {"title", "a-section-with-punctuation"}


# ---------------------------------------------------------------------- commands
COMMANDS = ("train", "tune", "analyze", "schedule", "compact")
# placeholders the docs use for values of the reader's choice, and what stands in for them
PLACEHOLDERS = {"N": "4", "S": "0"}
TUNE_CONFIGS = {path.stem for path in (ROOT / "tune_configs").glob("*.py") if not path.stem.startswith("_")}


def _block_commands(block: str) -> list[list[str]]:
    """The ``raydaug`` commands of one code block, with the shell variables and loop variables it sets
    expanded."""
    variables: dict[str, str] = {}
    commands = []
    for line in _logical_lines(block):
        assignment = ASSIGNMENT.match(line)
        if assignment:
            variables[assignment[1]] = assignment[2].strip("\"'")
        for loop in re.finditer(r"\bfor (\w+) in (\S+)", line):
            variables[loop[1]] = loop[2]
        commands += _commands_in(_expand(line, variables))
    return commands


def _logical_lines(block: str) -> list[str]:
    return block.replace("\\\n", " ").splitlines()


def _code_blocks(text: str) -> list[str]:
    blocks, current, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            if fenced:
                blocks.append("\n".join(current))
            fenced, current = not fenced, []
        elif fenced:
            current.append(line)
    return blocks


ASSIGNMENT = re.compile(r"\s*(?:export\s+)?(\w+)=(\"[^\"]*\"|'[^']*'|\S+)\s*(?:#.*)?$")
SUBCOMMAND_WORDS = {*COMMANDS, "export", "replay"}


def _expand(line: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], m[0]), line)


def _commands_in(line: str) -> list[list[str]]:
    """Every `raydaug …` invocation in one shell line: its arguments after the program name."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a shell line
        return []
    found, segment = [], []
    for token in [*tokens, ";"]:
        if token and set(token) <= set(";&|()<>"):
            found += _invocation(segment)
            segment = []
        else:
            segment.append(token)
    return found


def _invocation(tokens: list[str]) -> list[list[str]]:
    for index, token in enumerate(tokens):
        if token == "raydaug" or token.endswith("/raydaug"):
            if index + 1 < len(tokens) and tokens[index + 1] in COMMANDS:
                return [tokens[index + 1:]]
        if "raydaug " in token:  # a quoted command (`ray exec … '… raydaug tune …'`)
            return _commands_in(token)
    return []


def documented_commands() -> list[tuple[str, list[str]]]:
    """(file, arguments) of every `raydaug …` command in a code block of README.md and docs/*.md, and of
    every inline one with arguments; shell variables assigned in the block and loop variables expanded,
    optional parts of a synopsis (``[--out DIR]``) left out."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in _code_blocks(text):
            found += [(doc.name, args) for args in _block_commands(block)]
        for span in re.findall(r"`((?:\.venv/bin/)?raydaug [^`]+)`", _prose(text)):
            span = re.sub(r"\s*\[[^\]]*\](?:\.\.\.|…)?", "", span)
            # a span of subcommand words alone (`raydaug schedule export`) names a command, it is not one
            found += [(doc.name, args) for args in _commands_in(span) if not set(args) <= SUBCOMMAND_WORDS]
    return found


def test_every_documented_raydaug_command_parses_and_names_a_tune_config_that_exists():
    commands = documented_commands()
    assert len(commands) > 100, "the extraction finds the docs' commands"
    parser = build_parser()
    bad = []
    for doc, args in commands:
        args = [PLACEHOLDERS.get(arg, arg) for arg in args]
        if any("$" in arg for arg in args):
            bad.append(f"{doc}: raydaug {shlex.join(args)} (a shell variable the page does not set)")
            continue
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            bad.append(f"{doc}: raydaug {shlex.join(args)} (does not parse)")
            continue
        if parsed.command == "tune" and parsed.config != "CONFIG" and parsed.config not in TUNE_CONFIGS \
                and not (ROOT / parsed.config).exists():
            bad.append(f"{doc}: raydaug {shlex.join(args)} (no tune_config {parsed.config!r})")
    assert bad == []


def test_the_commands_outside_the_study_log_set_only_keys_that_exist():
    """The study log records commands of features since removed (each names its commit); every other page
    shows today's keys only."""
    bad = []
    for doc, args in documented_commands():
        if doc == "study-log.md" or args[0] not in ("train", "tune"):
            continue
        parsed = build_parser().parse_args([PLACEHOLDERS.get(arg, arg) for arg in args])
        keys = {item.split("=", 1)[0] for item in [*parsed.set, *getattr(parsed, "grid", [])]}
        unknown = keys - set(Config().to_dict())
        if unknown:
            bad.append(f"{doc}: raydaug {shlex.join(args)}: {sorted(unknown)}")
    assert bad == []


def test_the_extraction_reads_variables_loops_quoted_commands_and_synopses():
    block = ('S="--grid seed=0,1 --no-followup"\n'
             "for n in 3 5; do raydaug tune fig3_offline --set train_per_class=$n $S; done\n"
             "ray exec c.yaml --tmux 'cd x && .venv/bin/raydaug analyze runs/a --out r' # a comment\n"
             "raydaug tune smoke > log 2>&1 & raydaug compact runs/b\n")
    commands = _block_commands(block)
    assert commands == [["tune", "fig3_offline", "--set", "train_per_class=3", "--grid", "seed=0,1", "--no-followup"],
                        ["analyze", "runs/a", "--out", "r"], ["tune", "smoke"], ["compact", "runs/b"]]


# ---------------------------------------------------------------------- a few, run at smoke size
def test_the_readme_tour_trains_a_hand_made_baseline_as_written(tmp_path, monkeypatch, capsys):
    """`raydaug train --set aug=light --out runs/light` from the README, run from a fresh folder at a
    seconds-long size (the same command with keys that shrink it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/raydaug train --set aug=light --out runs/light" in readme
    monkeypatch.chdir(tmp_path)
    tiny = [f"--set={key}" for key in ("epochs=1", "eval_every=1", "checkpoint_every=1", "train_per_class=3",
                                       "val_per_class=3")]
    assert main(["train", "--set", "aug=light", *tiny, "--out", "runs/light"]) == 0
    assert (tmp_path / "runs" / "light" / "result.json").exists()
    assert "results in" in capsys.readouterr().out
