"""The one entry of every ``python -m train.*`` command: its ``main`` is

    def main(argv=None) -> int:
        return command_main(parse_args, run, argv)

:func:`command_main` parses the flags (a :func:`command_parser`: a bad flag is one ``error:`` line
and exit 2), sets up the allocator (``keep_freed_memory``) and logging (warnings of ``train`` and
``signal_core`` go to stderr as ``WARNING: ...`` lines), runs the command and maps what the user
can fix to one ``error:`` line on stderr and exit 2, never a trace: a ``ValueError`` (a bad
config, dataset folder or checkpoint: ``DatasetError`` and ``CheckpointError`` are ValueErrors) and
an ``OSError`` (the file and the cause: missing, a full or read-only disk, a folder where a file
belongs). Ctrl-C ends with exit 130 and the command's note. Anything else is a bug of ours and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable
from typing import Any

from .flags import input_path

_LOGGERS = ("train", "signal_core")
# errno -> what it means for the user and what to do (OSError messages name the file before it)
_CAUSES = {
    errno.ENOSPC: "no space left on the disk: free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere or change the permissions",
    errno.EPERM: "operation not permitted: write elsewhere or change the permissions",
    errno.EISDIR: "is a folder: give a file name",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "the name is too long",
}


class CommandParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: argument --top-k: must be at least 1, got 0``), and
    which refuses an output that would land in what the command reads, in a feature or triples folder it
    does not write, or on another output (``train/output_paths.py``; the flags declare their role by their
    type: ``input_path``, ``output_file``, ...): ``--out`` naming the ``--weights`` file, ``--out
    F/manifest.json`` with ``--features F``, ``--html`` = ``--out``."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        self._check_outputs(parsed)
        return parsed

    def _check_outputs(self, parsed: argparse.Namespace) -> None:
        from .output_paths import output_problem, parsed_paths

        try:
            problem = output_problem(parsed_paths(self._actions, parsed))
        except ValueError as exc:  # a path that cannot be followed (a symlink loop)
            self.error(f"argument {str(exc).rstrip('.')}")
        if problem is not None:
            self.error(f"argument {problem[0]}: {problem[1].rstrip('.')}")


def command_parser(prog: str, description: str, **kwargs: Any) -> CommandParser:
    """The argument parser of a ``python -m train.*`` command."""
    return CommandParser(prog=prog, description=description, **kwargs)


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


def describe_os_error(exc: OSError) -> str:
    """One line: the file, then the cause and what to do (``'out/r.json': no space left on the disk: ...``)."""
    if exc.strerror is None:  # raised by our code with a message of its own
        text = str(exc)
    else:
        cause = _CAUSES.get(exc.errno, exc.strerror)
        names = [n for n in (exc.filename, exc.filename2) if n is not None]
        text = f"{' -> '.join(repr(str(n)) for n in names)}: {cause}" if names else f"{cause} ({exc.strerror})"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def run_command(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace,
                interrupted: str = "") -> int:
    """``run(args)``; a user error prints ``error: <what is wrong>`` on stderr and gives exit status 2.

    Args:
        interrupted: what Ctrl-C leaves behind, printed after ``interrupted``.
    """
    try:
        run(args)
    except KeyboardInterrupt:
        print(f"interrupted{': ' + interrupted if interrupted else ''}", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def command_main(parse_args: Callable[[Any], argparse.Namespace], run: Callable[[argparse.Namespace], Any],
                 argv: list[str] | None = None, interrupted: str = "") -> int:
    """The whole ``main`` of a command: flags, allocator, logging, ``run`` and the error mapping."""
    from signal_core.utils.allocator import keep_freed_memory

    args = parse_args(argv)
    keep_freed_memory()  # faster large CPU tensors (signal_core/utils/allocator.py)
    configure_logging()
    return run_command(run, args, interrupted)


def add_engine_arguments(parser: argparse.ArgumentParser, uses: str) -> None:
    """``--engine`` and ``--onnx``, as ``train.evaluate`` and ``train.extract`` take them.

    Args:
        uses: what the engine's features are used for, said in ``--engine``'s help.
    """
    from signal_core.deploy.engines import ENGINES

    parser.add_argument("--engine", default="torch", help=f"what computes the features: {'|'.join(ENGINES)} "
                        f"(default torch). {uses}")
    parser.add_argument("--onnx", type=input_path,
                        help="--engine onnxruntime|openvino: an exported .onnx of these weights (python "
                        "-m train.export; fp32 or int8); default: the weights exported fp32 on the fly into "
                        "$SIGNAL_ONNX_CACHE (~/.cache/signal-onnx)")


def add_registration_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--registration``: the model's image-level registration of NIR / TIR to RGB, set at load time
    (:func:`signal_core.load_weights`; it has no weights, so any checkpoint takes any of them).

    Args:
        default: what leaving the flag out means, said in its help.
    """
    from signal_core.config import REGISTRATIONS

    parser.add_argument("--registration", choices=REGISTRATIONS, default=None,
                        help=f"register NIR / TIR to RGB before the encoder: {'|'.join(REGISTRATIONS)} (default: "
                             f"{default}; docs/alignment.md)")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for an unknown ``--engine`` or an ``--onnx`` without one that reads it."""
    from signal_core.deploy.engines import ENGINES

    if args.engine not in ENGINES:
        raise ValueError(f"--engine {args.engine!r}: use one of {', '.join(ENGINES)}.")
    if args.onnx and args.engine == "torch":
        raise ValueError("--onnx needs --engine onnxruntime or openvino.")
