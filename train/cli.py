"""What every command-line entry point of ``train`` shares: user errors end as one line, not a
trace; warnings of ``train`` and ``signal_core`` go to stderr as ``warning: ...`` lines."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

USER_ERRORS = (ValueError, FileNotFoundError)  # DatasetError and CheckpointError are ValueErrors
_LOGGERS = ("train", "signal_core")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be replaced)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Send the log records of ``train`` and ``signal_core`` (info and up) to stderr, once."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(getattr(h, "_signal_cli", False) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
            handler._signal_cli = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


def run_command(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """``run(args)``; a bad config, dataset folder, checkpoint or missing file prints
    ``error: <what is wrong>`` on stderr and gives exit status 2."""
    try:
        run(args)
    except USER_ERRORS as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def add_engine_arguments(parser: argparse.ArgumentParser, uses: str) -> None:
    """``--engine`` and ``--onnx``, as ``train.evaluate`` and ``train.extract`` take them.

    Args:
        uses: what the engine's features are used for, said in ``--engine``'s help.
    """
    from signal_core.deploy.engines import ENGINES

    parser.add_argument("--engine", default="torch", help=f"what computes the features: {'|'.join(ENGINES)} "
                        f"(default torch). {uses}")
    parser.add_argument("--onnx", help="--engine onnxruntime|openvino: an exported .onnx of these weights (python "
                        "-m train.export; fp32 or int8); default: the weights exported fp32 on the fly into "
                        "$SIGNAL_ONNX_CACHE (~/.cache/signal-onnx)")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for an unknown ``--engine`` or an ``--onnx`` without one that reads it."""
    from signal_core.deploy.engines import ENGINES

    if args.engine not in ENGINES:
        raise ValueError(f"--engine {args.engine!r}: use one of {', '.join(ENGINES)}.")
    if args.onnx and args.engine == "torch":
        raise ValueError("--onnx needs --engine onnxruntime or openvino.")
