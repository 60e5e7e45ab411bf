"""buf lint and buf breaking, run over a descriptor image instead of module sources.

buf cannot resolve `buf/validate/validate.proto` without the Buf Schema Registry, which is out
of reach, so we hand it the image protoc builds (with every import and source info) and limit
the checks to our own files with `--path`. The rules come from buf.yaml at the repository root
(lint STANDARD + COMMENTS, breaking FILE).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.protogen import paths, protoc

CONFIG = paths.REPO / "buf.yaml"


def _buf(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "buf"), *args]


def lint() -> int:
    image = protoc.build_image(paths.BUILD / "lint.binpb")
    cmd = _buf("lint", str(image), "--config", str(CONFIG), "--path", paths.OWN_PACKAGE_DIR)
    return subprocess.run(cmd, cwd=paths.REPO, check=False).returncode  # noqa: S603


def breaking(against_ref: str) -> int:
    """Compare the working tree's contracts with the descriptor set committed at against_ref."""
    committed = subprocess.run(  # noqa: S603
        ["git", "show", f"{against_ref}:generated/{paths.DESCRIPTOR_SET.name}"],  # noqa: S607
        cwd=paths.REPO,
        capture_output=True,
        check=False,
    )
    if committed.returncode != 0:
        print(f"breaking: no descriptor set committed at {against_ref}; nothing to compare")
        return 0
    against = paths.BUILD / "breaking-old.binpb"
    against.parent.mkdir(parents=True, exist_ok=True)
    against.write_bytes(committed.stdout)
    return breaking_against_image(against)


def breaking_against_image(against: Path) -> int:
    """buf breaking of the working tree's contracts against a descriptor set (FILE rules)."""
    image = protoc.build_image(paths.BUILD / "breaking-new.binpb")
    cmd = _buf("breaking", str(image), "--against", str(against), "--config", str(CONFIG))
    cmd += ["--path", paths.OWN_PACKAGE_DIR]
    return subprocess.run(cmd, cwd=paths.REPO, check=False).returncode  # noqa: S603
