"""generated/ is committed and must be exactly what `make gen` produces from proto/."""

from __future__ import annotations

import filecmp
from pathlib import Path

from tools.protogen import generate, paths


def _tree(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_matches_a_fresh_generation(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    fresh, committed = _tree(tmp_path), _tree(paths.GENERATED)
    assert sorted(fresh) == sorted(committed), "files differ: run `make gen`"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert stale == [], f"stale generated files (run `make gen`): {stale}"
