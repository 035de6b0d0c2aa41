"""Package-level checks for siamese.evaluation: cheap import, flat re-exports, doctests."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import siamese.evaluation

MODULES = ("distances", "knn", "metrics", "kfold", "oneshot", "retrieval", "plots")


def test_import_does_not_load_torch_matplotlib_or_sklearn() -> None:
    code = (
        "import sys, siamese.evaluation\n"
        "heavy = ('torch', 'matplotlib', 'sklearn', 'pytorch_metric_learning')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_flat_reexports() -> None:
    for name in siamese.evaluation.__all__:
        assert hasattr(siamese.evaluation, name), name
    assert {"eer", "tar_at_far", "kfold_verification", "retrieval_metrics", "plot_roc"} <= set(
        siamese.evaluation.__all__
    )


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"siamese.evaluation.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
