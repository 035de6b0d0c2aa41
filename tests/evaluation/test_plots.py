"""Tests for siamese/evaluation/plots.py: each plot writes a real, non-empty PNG and returns its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.errors import DataError
from siamese.evaluation import plot_det, plot_roc, plot_score_histograms

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    is_same = rng.random(300) < 0.3
    return rng.normal(size=300) + 2.0 * is_same, is_same


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as img:
        assert min(img.size) > 200
        assert len(set(np.asarray(img.convert("L")).ravel().tolist())) > 10  # something was drawn


def test_plot_roc(tmp_path: Path, pairs) -> None:
    out = plot_roc(*pairs, tmp_path / "nested" / "roc.png", title="test ROC")
    assert out == tmp_path / "nested" / "roc.png"
    assert_png(out)


def test_plot_det(tmp_path: Path, pairs) -> None:
    out = plot_det(*pairs, str(tmp_path / "det.png"))
    assert isinstance(out, Path)
    assert_png(out)


def test_plot_score_histograms(tmp_path: Path, pairs) -> None:
    scores, is_same = pairs
    assert_png(plot_score_histograms(-scores, is_same, -1.0, tmp_path / "hist.png"))
    # One class only and no threshold are fine for a histogram.
    assert_png(plot_score_histograms(scores[is_same], is_same[is_same], None, tmp_path / "g.png", "cosine"))


def test_separable_and_tiny_inputs(tmp_path: Path) -> None:
    scores, same = [0.9, 0.8, 0.2, 0.1], [True, True, False, False]
    assert_png(plot_roc(scores, same, tmp_path / "roc.png"))
    assert_png(plot_det(scores, same, tmp_path / "det.png"))
    assert_png(plot_score_histograms([0.5, 0.5], [True, False], 0.5, tmp_path / "h.png"))


def test_no_pyplot_figures_left_open(tmp_path: Path, pairs) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_roc(*pairs, tmp_path / "a.png")
    plot_det(*pairs, tmp_path / "b.png")
    plot_score_histograms(*pairs, 0.0, tmp_path / "c.png")
    assert plt.get_fignums() == before


def test_bad_input_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        plot_roc([0.1, 0.2], [True], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_eer_label_reports_distance_for_negated_scores():
    from siamese.evaluation.plots import _eer_label

    assert _eer_label(0.05, -0.4, True) == "EER = 5.00% at distance 0.4"
    assert _eer_label(0.05, 0.7, False) == "EER = 5.00% at 0.7"
