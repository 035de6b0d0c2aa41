"""The stored benchmark results (benchmarks/results/, what docs/results.md cites): every envelope
parses, sits where the layout says, and INDEX.md is the one `benchmarks/results_index.py` generates;
and `benchmarks/common.py` writes new results where the layout says."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROOT = BENCHMARKS / "results"
RESULTS = sorted(p for p in ROOT.rglob("*.json") if p.relative_to(ROOT).parts[0] != "smoke")


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`results_index`, freshly imported with the benchmarks folder on sys.path (as the scripts run)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("common", "results_index"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import results_index

    return results_index


def test_results_exist_in_both_folders() -> None:
    folders = {p.relative_to(ROOT).parts[0] for p in RESULTS}
    assert folders == {"canonical", "experiments"}


@pytest.mark.parametrize("path", RESULTS, ids=[p.relative_to(ROOT).as_posix() for p in RESULTS])
def test_result_is_valid_json_with_its_command(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["command"].startswith("benchmarks/") and doc["benchmark"]
    assert path.with_suffix(".md").is_file()
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "canonical":
        assert len(rel.parts) == 2, "canonical/ is flat"
    else:
        assert rel.parts[0] == "experiments" and rel.parts[1] == doc["benchmark"] and len(rel.parts) == 3


def test_every_markdown_table_has_its_json() -> None:
    tables = [
        p for p in ROOT.rglob("*.md") if p.name != "INDEX.md" and p.relative_to(ROOT).parts[0] != "smoke"
    ]
    assert tables and all(p.with_suffix(".json").is_file() for p in tables)


def test_index_is_up_to_date(bench: ModuleType) -> None:
    """Regenerate and compare: run `python benchmarks/results_index.py` after adding or moving results."""
    assert (ROOT / "INDEX.md").read_text(encoding="utf-8") == bench.render_index(ROOT)


def test_index_lists_every_result_with_its_figures(bench: ModuleType) -> None:
    index = bench.render_index(ROOT)
    for path in RESULTS:
        rel = path.relative_to(ROOT).with_suffix(".md").as_posix()
        row = next(line for line in index.splitlines() if f"]({rel})" in line)
        assert row.split(" | ")[4].strip(), f"no key figures for {rel}"
    assert index.index("## canonical/") < index.index("## experiments/")


def _write_doc(path: Path, **fields: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "orl", "smoke": False, "command": "benchmarks/orl.py data", "finished": "2030-01-02"}
    path.write_text(json.dumps({**doc, **fields}))
    path.with_suffix(".md").write_text("table\n")


def test_index_of_a_made_up_tree(bench: ModuleType, tmp_path: Path) -> None:
    summary = {"ours": {"eer": {"mean": 0.0711, "std": 0.0083}}}
    _write_doc(
        tmp_path / "experiments" / "orl" / "b.json", summary=summary, git={"commit": "a" * 40, "dirty": True}
    )
    _write_doc(tmp_path / "canonical" / "a.json", summary=summary, git=None)
    _write_doc(tmp_path / "smoke" / "orl.json", smoke=True)
    _write_doc(tmp_path / "canonical" / "c-smoke.json", smoke=True)
    rows = [line for line in bench.render_index(tmp_path).splitlines() if line.startswith("| [")]
    assert len(rows) == 2
    assert rows[0].startswith("| [a](canonical/a.md) | orl | `benchmarks/orl.py data` | 2030-01-02 |")
    assert "ours EER 7.11 ± 0.83" in rows[0] and rows[0].endswith("| — |")
    assert rows[1].endswith(f"| {'a' * 10}+dirty |")


def test_write_results_files_an_experiment_and_updates_the_index(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    summary = {"ours": {"eer": {"mean": 0.05, "std": 0.0}}}
    stem = common.write_results(tmp_path, "orl", {"summary": summary}, "| table |", smoke=False)
    assert stem.parent == tmp_path / "experiments" / "orl" and stem.name.startswith("orl_20")
    doc = json.loads((stem.parent / f"{stem.name}.json").read_text())
    assert doc["benchmark"] == "orl" and doc["summary"] == summary
    git = doc["git"]  # this test runs in a checkout; outside one the key is None
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))
    assert (tmp_path / "INDEX.md").read_text() == bench.render_index(tmp_path)
    assert "ours EER 5.00" in (tmp_path / "INDEX.md").read_text()


def test_result_stem_routes_smoke_and_explicit_folders(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    default = tmp_path / "results"
    assert (
        common.result_stem(default, "cedar", False, when)
        == default / "experiments/cedar/cedar_20300102-030405"
    )
    assert common.result_stem(default, "cedar", True, when) == default / "smoke" / "cedar"
    canonical = default / "canonical"
    assert common.result_stem(canonical, "cedar", False, when) == canonical / "cedar"
    assert common.result_stem(tmp_path / "x", "cedar", True, when) == tmp_path / "x" / "cedar-smoke"


def test_write_results_outside_the_tree_keeps_the_name_with_a_dot(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    common.write_results(tmp_path / "out", "finetune_orl_share-0.25", {}, "t", smoke=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "finetune_orl_share-0.25.json",
        "finetune_orl_share-0.25.md",
    ]
    assert not (tmp_path / "results").exists()


def test_git_state_outside_a_checkout_is_none(bench: ModuleType, tmp_path: Path) -> None:
    import common

    assert common.git_state(tmp_path) is None
