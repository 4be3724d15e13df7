"""``python -m train.report ... --out DIR`` = ``python -m train.evaluate ... --report DIR`` (see there)."""
from __future__ import annotations

import sys

from ..evaluate import main as evaluate_main


def main(argv=None) -> int:
    """The evaluate command with ``--out DIR`` as the report folder."""
    return evaluate_main(argv, report_command=True)


if __name__ == "__main__":
    sys.exit(main())
