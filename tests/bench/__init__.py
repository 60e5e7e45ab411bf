"""`make bench`: the mesh's throughput and latency as ratios against baselines run alongside.

See `python -m tests.bench --help`. Not collected by pytest except `test_smoke.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python -m tests.bench` runs without pytest's `pythonpath`: the generated code must be
# importable as `mesh.*`, as it is for the services (the launcher sets PYTHONPATH for them).
_GENERATED = str(Path(__file__).resolve().parents[2] / "generated")
if _GENERATED not in sys.path:
    sys.path.insert(0, _GENERATED)
