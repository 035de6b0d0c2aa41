"""One CLI vocabulary: a flag shared by several commands has one help, one type, one default and one
panel in all of them; every option sits in a panel of `PANELS`; renamed flags still work with a
warning; the root help names every registered command."""

from __future__ import annotations

import inspect
import json
import os
import shutil
from typing import Any

import pytest
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from siamese.cli.app import COMMANDS, GROUPS, app, root_help
from siamese.cli.common import renamed_flags
from siamese.cli.options import PANELS, RENAMED

runner = CliRunner(env={"COLUMNS": "250"})

FACETS = ("help", "type", "default", "panel")

# A shared flag's facet that differs on purpose: (flag, facet) -> the commands whose value differs
# from the one all the other commands share. Each entry must still be needed (a stale one fails).
DIFFERS: dict[tuple[str, str], set[str]] = {
    # verify answers one pair: starting CUDA would take longer than the pair on the CPU.
    ("--device", "default"): {"verify"},
    # In training, the batch is a hyperparameter (samples per optimisation step, the preset's);
    # elsewhere it is the images of one forward pass, which leaves the results alone.
    ("--batch-size", "help"): {"train", "pretrain"},
    ("--batch-size", "panel"): {"train", "pretrain"},
    # probe: the probe library's own default (`ProbeOptions.batch_size`).
    ("--batch-size", "default"): {"train", "pretrain", "probe"},
    # verify and identify apply one fusion rule; enroll and evaluate build and calibrate several.
    ("--fusion", "help"): {"verify", "identify"},
    ("--fusion", "type"): {"verify", "identify"},
    # serve enrols into its gallery too, and creates it on the first enrolment.
    ("--gallery", "help"): {"serve"},
}
PER_COMMAND_HELP = {"--out"}
"""Flags whose help is each command's own: `--out` is what the command writes (a run directory, a
report folder, a CSV file, a gallery, a model file), in the Output panel everywhere."""


def _options() -> dict[str, dict[str, TyperOption]]:
    """flag -> {command: its click option}, over every registered command."""
    group: Any = typer.main.get_command(app)
    found: dict[str, dict[str, TyperOption]] = {}
    for name, command in group.commands.items():
        for param in command.params:
            if isinstance(param, TyperOption) and param.name != "help":
                found.setdefault(param.opts[0], {})[name] = param
    return found


def _facet(option: TyperOption, facet: str) -> object:
    return {
        "help": option.help,
        "type": str(option.type_descriptor.annotation),
        "default": option.default,
        "panel": option.rich_help_panel,
    }[facet]


SHARED = {flag: by for flag, by in _options().items() if len(by) > 1}


def test_every_command_is_walked():
    group: Any = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS) | set(GROUPS) and len(COMMANDS) == 11
    assert {"--device", "--seed", "--model", "--batch-size", "--workers", "--json"} <= set(SHARED)
    assert {flag for flag, _ in DIFFERS} | PER_COMMAND_HELP <= set(SHARED)


NOT_YET_ONE: set[str] = set()
"""Shared flags still declared twice, expected to fail until they are one alias each (strict: the
test fails once they are)."""


@pytest.mark.parametrize(
    "flag",
    [
        pytest.param(f, marks=pytest.mark.xfail(strict=True, reason="declared twice"))
        if f in NOT_YET_ONE
        else f
        for f in sorted(SHARED)
    ],
)
def test_a_shared_flag_has_one_help_type_default_and_panel(flag):
    by_command = SHARED[flag]
    for facet in FACETS:
        if facet == "help" and flag in PER_COMMAND_HELP:
            continue
        differ = DIFFERS.get((flag, facet), set())
        assert differ <= set(by_command), f"{flag} {facet}: {differ - set(by_command)} lack the flag"
        values = {command: _facet(option, facet) for command, option in by_command.items()}
        common = {v for c, v in values.items() if c not in differ}
        assert len(common) == 1, f"{flag} has several {facet}s: {values}"
        (value,) = common
        stale = [c for c in differ if values[c] == value]
        assert not stale, f"{flag} {facet}: {stale} no longer differ; drop them from DIFFERS"


def test_every_shown_option_is_in_a_panel_of_the_vocabulary():
    for flag, by_command in _options().items():
        for command, option in by_command.items():
            if not option.hidden:  # hidden: an old spelling kept working for a release
                assert option.rich_help_panel in PANELS, f"{command} {flag}: {option.rich_help_panel!r}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_help_shows_the_panels_in_the_vocabulary_order(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    at = {panel: result.output.find(f"─ {panel} ─") for panel in PANELS}
    shown = [panel for panel in PANELS if at[panel] >= 0]
    assert len(shown) >= 2 and sorted(shown, key=at.__getitem__) == shown


def test_evaluate_shows_its_five_panels():
    result = runner.invoke(app, ["evaluate", "--help"])
    assert [p for p in PANELS if f"─ {p} ─" in result.output] == [
        "Data",
        "Model",
        "Protocol",
        "Run",
        "Output",
    ]


def test_root_help_names_every_registered_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "Siamese networks for verification:" in line)
    listed = line.split(":", 1)[1].strip(" .│").split(", ")
    assert listed == list(COMMANDS) + list(GROUPS)
    commands_panel = result.output.split("Commands")[1]
    assert all(f" {name} " in commands_panel for name in [*COMMANDS, *GROUPS])
    assert root_help(["a", "b"]) == "Siamese networks for verification: a, b."


# -- renamed flags -----------------------------------------------------------------------------------

# The least each command needs to parse, and a value for each old spelling.
PARSE_BASE = {
    "enroll": ["DATA", "--out", "g"],
    "export": ["--format", "onnx", "--out", "m.onnx"],
    "probe": [],
}
VALUES = {"--references": "2", "--batch-size": "3", "--k": "3", "--c": "0.5", "--test-fraction": "0.25"}
RENAMES = [(command, old, new) for command, renames in RENAMED.items() for old, new in renames.items()]


@pytest.mark.parametrize(("command", "old", "new"), RENAMES)
def test_an_old_spelling_sets_the_new_option_and_warns(command, old, new, capsys):
    group: Any = typer.main.get_command(app)
    cmd = group.commands[command]
    flags = {opt for p in cmd.params for opt in p.opts}
    assert new in flags and old not in flags  # the old spelling is not offered any more
    args = [*PARSE_BASE[command], old, VALUES[old]]
    params = cmd.make_context(command, args).params
    assert capsys.readouterr().err == f"warning: {old} is deprecated, use {new}\n"
    assert params == cmd.make_context(command, [*PARSE_BASE[command], new, VALUES[old]]).params
    assert capsys.readouterr().err == ""


def test_renaming_leaves_values_and_other_commands_alone(capsys):
    assert renamed_flags("probe", ["--k=3", "--k", "4", "--c"]) == [
        "--neighbours=3",
        "--neighbours",
        "4",
        "--linear-c",
    ]
    assert (
        capsys.readouterr().err
        == "warning: --k is deprecated, use --neighbours\nwarning: --c is deprecated, use --linear-c\n"
    )
    assert renamed_flags("evaluate", ["D", "--references", "1,3"]) == ["D", "--references", "1,3"]
    assert renamed_flags("probe", ["--", "--k"]) == ["--", "--k"]
    assert capsys.readouterr().err == ""


def test_probe_with_the_old_flag_runs_and_warns(tiny_run):
    run, data = tiny_run
    result = runner.invoke(app, ["probe", str(data), "--model", str(run), "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "warning: --k is deprecated, use --neighbours\n"
    assert json.loads(result.stdout)["options"]["k"] == 3


# -- defaults the CLI states are the library's ---------------------------------------------------------


def _cli_defaults(command: str) -> dict[str, object]:
    return {n: p.default for n, p in inspect.signature(COMMANDS[command]).parameters.items()}


@pytest.mark.parametrize("command", ["evaluate", "enroll"])
def test_inference_defaults_are_the_library_functions(command):
    from siamese.galleries.enroll import enroll
    from siamese.inference.evaluate import evaluate

    library = inspect.signature({"evaluate": evaluate, "enroll": enroll}[command]).parameters
    cli = _cli_defaults(command)
    shared = {"num_pairs", "seed", "folds", "batch_size", "workers"} & set(cli) & set(library)
    assert {"seed", "batch_size", "workers"} <= shared
    for name in shared:
        assert cli[name] == library[name].default, (command, name)


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_training_defaults_are_the_config(command):
    from siamese.training.config import DataConfig, TrainConfig

    cli, config = _cli_defaults(command), TrainConfig()
    assert (cli["seed"], cli["device"], cli["workers"]) == (config.seed, config.device, DataConfig().workers)
    if command == "train":
        assert cli["strict"] == DataConfig().strict


def test_pairs_defaults_are_generate_pairs():
    from siamese.data import generate_pairs

    library = inspect.signature(generate_pairs).parameters
    assert _cli_defaults("pairs")["seed"] == library["seed"].default
    assert "[default: 0.5]" in (SHARED["--forgery-fraction"]["pairs"].help or "")
    assert library["forgery_fraction"].default == 0.5


# -- --model defaults to the most recent run in every command that takes it -----------------------------


def test_embed_uses_the_most_recent_run_without_model(tiny_run, tmp_path, monkeypatch):
    run, data = tiny_run
    shutil.copytree(run, tmp_path / "runs" / "r1")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["embed", str(data), "--out", str(tmp_path / "e.npy")])
    assert result.exit_code == 0, result.output
    assert f"using the most recent run: {os.path.join('runs', 'r1')}" in result.stderr
    assert (tmp_path / "e.npy").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["embed", "DATA", "--out", "e.npy"],
        ["export", "--format", "torchscript", "--out", "m.pt"],
        ["enroll", "DATA", "--out", "g"],
        ["probe", "DATA"],
        ["evaluate", "DATA"],
        ["verify", "a.png", "b.png"],
    ],
)
def test_no_model_and_no_runs_is_a_one_line_error_naming_model(args, tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [str(tiny_run[1]) if a == "DATA" else a for a in args])
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "--model" in result.stderr
