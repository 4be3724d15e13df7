"""What every command-line entry point of ``train`` shares: user errors end as one line, not a trace."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

USER_ERRORS = (ValueError, FileNotFoundError)  # DatasetError and CheckpointError are ValueErrors


def run_command(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """``run(args)``; a bad config, dataset folder, checkpoint or missing file prints
    ``error: <what is wrong>`` on stderr and gives exit status 2."""
    try:
        run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
