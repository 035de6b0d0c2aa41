"""The CLI's choice options offer exactly the names in `siamese.names`, and reject anything else."""

import re

import pytest
from typer.testing import CliRunner

from siamese import names
from siamese.cli.app import app

runner = CliRunner(env={"COLUMNS": "400"})

CHOICES = [
    ("train", "--loss", names.LOSSES),
    ("train", "--preset", names.PRESETS),
    ("train", "--sampler", names.SAMPLERS),
    ("train", "--encoder", names.ENCODERS),
    ("train", "--distance", names.DISTANCES),
    ("train", "--miner", names.MINERS),
    ("train", "--optimizer", names.OPTIMIZERS),
    ("train", "--device", names.DEVICES),
    ("pretrain", "--method", names.SSL_METHODS),
    ("pretrain", "--preset", names.PRESETS),
    ("pretrain", "--encoder", names.ENCODERS),
    ("pretrain", "--device", names.DEVICES),
    ("embed", "--device", names.DEVICES),
    ("evaluate", "--device", names.DEVICES),
    ("verify", "--device", names.DEVICES),
]


@pytest.mark.parametrize(("command", "flag", "allowed"), CHOICES)
def test_an_unknown_choice_is_rejected_listing_exactly_the_names(command, flag, allowed):
    result = runner.invoke(app, [command, flag, "bogus"])
    assert result.exit_code == 2
    listed = re.search(r"'bogus' is not one of (.*?)\.\s", result.output)
    assert listed is not None, result.output
    assert tuple(re.findall(r"'([^']+)'", listed.group(1))) == allowed


def test_the_methods_are_supervised_then_the_self_supervised_ones():
    assert names.METHODS == ("supervised", *names.SSL_METHODS)
    assert all(isinstance(n, str) for n in names.METHODS)
