"""The stored benchmark results (benchmarks/results/*.json, what the README's tables cite) parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "results").glob("*.json"))


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_result_is_valid_json_with_its_command(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["command"].startswith("benchmarks/") and doc["benchmark"]
    assert path.with_suffix(".md").is_file()
