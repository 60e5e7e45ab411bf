"""Contract tooling: `python -m tools.protogen [gen|lint|breaking REF]`."""

from __future__ import annotations

import sys

from tools.protogen import buf, generate


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "gen"
    if command == "gen":
        generate.generate()
        return 0
    if command == "lint":
        return buf.lint()
    if command == "breaking":
        return buf.breaking(argv[1] if len(argv) > 1 else "main")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
