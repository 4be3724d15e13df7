"""``python -m train.report ... --out DIR`` = ``python -m train.evaluate ... --report DIR`` (see there)."""
from __future__ import annotations

import sys

from ..evaluate import main as evaluate_main


def main(argv=None) -> int:
    """The evaluate command with ``--out DIR`` read as the report folder."""
    args = list(sys.argv[1:] if argv is None else argv)
    args = ["--report" if a == "--out" else a.replace("--out=", "--report=", 1) for a in args]
    return evaluate_main(args)


if __name__ == "__main__":
    sys.exit(main())
