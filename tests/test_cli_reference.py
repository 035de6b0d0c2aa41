"""docs/cli.md is the app's own reference: regenerating it changes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_command_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    gen_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_cli)
    rendered = gen_cli.render()
    assert "## `siamese gallery remove`" in rendered and "## `siamese identify`" in rendered
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == rendered, "run python docs/gen_cli.py"
