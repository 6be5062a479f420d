"""Write ``docs/cleaning-rules.md`` from the rule registry (run: python scripts/write_rules_doc.py).

The page is rendered by :func:`k3smig_lib.core.clean.ruledoc.rules_document`, the same code behind
``k3smig rules``; ``tests/unit/test_docs.py`` fails when the committed page and the registry drift.
``--check`` exits 1 (and writes nothing) when the page is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from k3smig_lib.core.clean.ruledoc import DOC_PATH, rules_document  # noqa: E402


def main(argv: list[str]) -> int:
    """Write the page, or with ``--check`` only say whether it is current."""
    path = ROOT / DOC_PATH
    text = rules_document()
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if "--check" in argv:
        if current != text:
            print(f"{DOC_PATH} is out of date: run `python scripts/write_rules_doc.py`", file=sys.stderr)
            return 1
        print(f"{DOC_PATH} is current")
        return 0
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {DOC_PATH}")
    else:
        print(f"{DOC_PATH} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
