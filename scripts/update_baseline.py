"""Regenerate the regression baseline deliberately (after a change that is meant to change
results): ``.venv/bin/python scripts/update_baseline.py``.  Commit the new JSON with a message
that says why the numbers moved.  ``tests/test_model.py::test_regression_baseline`` compares
a fresh run against it."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from regression import BASELINE, regression_numbers  # noqa: E402

if __name__ == "__main__":
    nums = regression_numbers()
    BASELINE.write_text(json.dumps(nums, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {BASELINE.relative_to(ROOT)} ({len(nums)} numbers)")
