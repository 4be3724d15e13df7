"""Demo options: command-line flags, each with an environment variable for Hugging Face Spaces,
validated before anything is loaded.

Every start-up problem is a :class:`StartupError` whose message says what to do; ``app.py``
prints it and exits 2 without a stack trace.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from signal_core.config import REGISTRATIONS
from signal_core.data import DATASETS
from signal_core.deploy.engines import ENGINES

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = "assets/demo_model.safetensors"
DEFAULT_GALLERY = "assets/demo/gallery"
DEFAULT_QUERIES = "assets/demo/query"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_EXAMPLES = 12
CREATE_ASSETS_HINT = ("The bundled demo assets are made by the synthetic benchmark "
                      "(python -m train.synthetic: it writes "
                      f"{DEFAULT_WEIGHTS}, {DEFAULT_GALLERY} and {DEFAULT_QUERIES}). Or point the demo at your own "
                      "files: --weights / SIGNAL_WEIGHTS (our .safetensors checkpoint, the authors' Signal_model.pth "
                      "with --dataset, a Hub-style folder, hf-hub:owner/repo or hf://owner/repo/file) and --gallery / "
                      "SIGNAL_GALLERY (a triples folder with RGB/, NI/, TI/, or a dataset folder with --dataset).")


class StartupError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


@dataclass
class DemoOptions:
    """Everything ``app.py`` can be told (see :func:`parse_options` for flags and variables)."""

    weights: str = DEFAULT_WEIGHTS
    gallery: str = DEFAULT_GALLERY
    queries: str | None = DEFAULT_QUERIES
    dataset: str | None = None
    device: str = "auto"
    precision: str = "auto"
    engine: str = "torch"
    onnx: str | None = None
    registration: str | None = None  # None: the checkpoint's own
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    cache_dir: str | None = None
    batch_size: int = 32
    max_file_size: int = 20  # MB per uploaded file
    concurrency: int = 4  # searches run at once (more wait in gradio's queue)
    threads: int = 0  # torch threads per search; 0: CPU cores / concurrency (at least 1)
    # a visitor's own gallery (demo/uploads.py, demo/sessions.py); upload_max_triples 0 turns it off
    upload_max_triples: int = 2000
    upload_max_mb: int = 200  # uncompressed, whole upload
    upload_max_image_mb: int = 20  # uncompressed, one image
    upload_max_ratio: int = 100  # uncompressed / compressed (zip bombs)
    upload_max_files: int = 10_000  # entries of a zip, or files uploaded at once
    upload_max_seconds: int = 300  # intake and feature extraction
    upload_max_concurrent: int = 2  # uploads processed at the same time
    upload_keep_mb: int = 1024  # all visitors' galleries kept at once (images + features); least used removed
    upload_cache_mb: int = 1024  # gradio's folder of uploaded files (queries, zips): new uploads refused above


# (flag, environment variable, help); defaults are DemoOptions' field defaults.
OPTION_TABLE = [
    ("--weights", "SIGNAL_WEIGHTS", "model: our .safetensors checkpoint, the authors' Signal_model.pth (needs "
                                    "--dataset), a Hub-style folder (model.safetensors + config.json), or on the "
                                    "Hugging Face Hub hf-hub:owner/repo[@revision] (a folder) or "
                                    "hf://owner/repo[@revision]/file"),
    ("--gallery", "SIGNAL_GALLERY", "gallery folder: a triples folder (RGB/, NI/, TI/ with the same file names) "
                                    "or a dataset folder (with --dataset; its test gallery is used); or a saved "
                                    "gallery index: FILE.sgi, milvus:FILE.db, milvus://HOST:PORT (docs/scale.md)"),
    ("--queries", "SIGNAL_QUERIES", "triples folder of example queries shown under the inputs ('' for none)"),
    ("--dataset", "SIGNAL_DATASET", f"dataset preset {'|'.join(DATASETS)}: config of an authors' checkpoint and "
                                    "layout of a dataset gallery folder"),
    ("--device", "SIGNAL_DEVICE", f"{'|'.join(DEVICES)} (auto: cuda when available)"),
    ("--precision", "SIGNAL_PRECISION", f"{'|'.join(PRECISIONS)} inference precision"),
    ("--engine", "SIGNAL_ENGINE", f"{'|'.join(ENGINES)}: what computes the gallery and query features (the SIM / "
                                  "LAM overlays always come from the torch model)"),
    ("--onnx", "SIGNAL_ONNX", "--engine onnxruntime|openvino: an exported .onnx of --weights (python -m "
                              "train.export; fp32 or int8); default: exported fp32 on the fly into a cache"),
    ("--registration", "SIGNAL_REGISTRATION", f"{'|'.join(REGISTRATIONS)}: register NIR / TIR to RGB before the "
                                              "encoder (no weights: any checkpoint takes it; the explanation then "
                                              "draws the edges before / after and the displacement at its true "
                                              "length); default: the checkpoint's own"),
    ("--host", "GRADIO_SERVER_NAME", "address to listen on"),
    ("--port", "GRADIO_SERVER_PORT", "port to listen on"),
    ("--share", "SIGNAL_SHARE", "also open a public gradio.live link (1/true)"),
    ("--cache-dir", "SIGNAL_CACHE_DIR", "gallery-feature cache folder (default ~/.cache/signal-demo)"),
    ("--batch-size", "SIGNAL_BATCH_SIZE", "batch size of the gallery feature extraction"),
    ("--max-file-size", "SIGNAL_MAX_FILE_SIZE", "largest file a user may upload, in MB"),
    ("--concurrency", "SIGNAL_CONCURRENCY", "searches run at once; more wait in the queue"),
    ("--threads", "SIGNAL_THREADS", "torch CPU threads per search (0: CPU cores / concurrency, at least 1)"),
    ("--upload-max-triples", "SIGNAL_UPLOAD_MAX_TRIPLES", "most triples in a visitor's own gallery (0: no uploads)"),
    ("--upload-max-mb", "SIGNAL_UPLOAD_MAX_MB", "largest own gallery, uncompressed, in MB"),
    ("--upload-max-image-mb", "SIGNAL_UPLOAD_MAX_IMAGE_MB", "largest image of an own gallery, uncompressed, in MB"),
    ("--upload-max-ratio", "SIGNAL_UPLOAD_MAX_RATIO", "highest compression ratio of a zip (zip bombs)"),
    ("--upload-max-files", "SIGNAL_UPLOAD_MAX_FILES", "most entries in an uploaded zip (or files at once)"),
    ("--upload-max-seconds", "SIGNAL_UPLOAD_MAX_SECONDS", "time limit of one upload (intake and features)"),
    ("--upload-max-concurrent", "SIGNAL_UPLOAD_MAX_CONCURRENT", "uploads processed at the same time"),
    ("--upload-keep-mb", "SIGNAL_UPLOAD_KEEP_MB", "visitors' galleries kept at once, all together (images and "
                                                  "features), in MB; the least recently used are removed"),
    ("--upload-cache-mb", "SIGNAL_UPLOAD_CACHE_MB", "most MB of uploaded files (query images, zips) kept at once; "
                                                    "new uploads are refused above it"),
]


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a :class:`StartupError` (one ``error:`` line) instead of exiting."""

    def error(self, message: str):
        raise StartupError(f"{message} (see app.py --help).")


def _truthy(value: str) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_options(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> DemoOptions:
    """Flags override environment variables, which override the defaults.

    Raises:
        StartupError: an unknown flag, or a value of the wrong type or out of range.
    """
    env = os.environ if environ is None else environ
    defaults = DemoOptions()
    parser = _ArgumentParser(
        prog="app.py", description="Signal multi-modal ReID demo (Gradio).",
        epilog="Every flag can also be set by the environment variable shown in brackets.")
    for flag, var, text in OPTION_TABLE:
        field = flag[2:].replace("-", "_")
        default = getattr(defaults, field)
        if flag == "--share":
            parser.add_argument(flag, action="store_true", default=_truthy(env.get(var, "0")),
                                help=f"{text} [{var}]")
            continue
        kind = int if isinstance(default, int) else str
        choices = {"--device": DEVICES, "--precision": PRECISIONS, "--dataset": DATASETS, "--engine": ENGINES,
                   "--registration": REGISTRATIONS}.get(flag)
        value = env.get(var) or default
        if flag == "--dataset" and value:
            value = value.lower()
        try:
            value = kind(value) if value is not None else None
        except ValueError:
            raise StartupError(f"{var}={value!r}: expected {kind.__name__} for {flag}.") from None
        parser.add_argument(flag, type=kind, default=value, choices=choices, help=f"{text} [{var}; default {default}]")
    options = DemoOptions(**vars(parser.parse_args(argv)))
    validate_options(options)
    return options


def validate_options(options: DemoOptions) -> None:
    """Raise :class:`StartupError` for a value out of range (checked before anything is loaded)."""
    if options.dataset is not None and options.dataset not in DATASETS:
        raise StartupError(f"--dataset {options.dataset!r}: expected one of {', '.join(DATASETS)}.")
    if options.engine not in ENGINES:
        raise StartupError(f"--engine {options.engine!r}: expected one of {', '.join(ENGINES)}.")
    if options.onnx and options.engine == "torch":
        raise StartupError("--onnx / SIGNAL_ONNX needs --engine / SIGNAL_ENGINE onnxruntime or openvino.")
    if options.registration is not None and options.registration not in REGISTRATIONS:
        raise StartupError(f"--registration {options.registration!r}: expected one of {', '.join(REGISTRATIONS)}.")
    if options.registration not in (None, "none") and options.engine != "torch":
        raise StartupError(f"--registration {options.registration} runs in the torch model only (an exported graph "
                           "has none): drop --engine / SIGNAL_ENGINE, or use --registration none.")
    if options.batch_size < 1:
        raise StartupError(f"--batch-size must be at least 1, got {options.batch_size}.")
    if not 1 <= options.port <= 65535:
        raise StartupError(f"--port must be from 1 to 65535, got {options.port}.")
    if options.max_file_size < 1:
        raise StartupError(f"--max-file-size must be at least 1 (MB), got {options.max_file_size}.")
    if options.concurrency < 1:
        raise StartupError(f"--concurrency must be at least 1, got {options.concurrency}.")
    if options.threads < 0:
        raise StartupError(f"--threads must be 0 (automatic) or more, got {options.threads}.")
    if options.upload_max_triples < 0:
        raise StartupError(f"--upload-max-triples must be 0 (no uploads) or more, got {options.upload_max_triples}.")
    for name in ("max_mb", "max_image_mb", "max_ratio", "max_files", "max_seconds", "max_concurrent", "keep_mb",
                 "cache_mb"):
        value = getattr(options, f"upload_{name}")
        if value < 1:
            raise StartupError(f"--upload-{name.replace('_', '-')} must be at least 1, got {value}.")
    if options.upload_max_triples and options.upload_keep_mb < options.upload_max_mb:
        raise StartupError(f"--upload-keep-mb {options.upload_keep_mb} is below --upload-max-mb "
                           f"{options.upload_max_mb}: the largest upload could never be kept; raise it.")
    if options.upload_cache_mb < options.max_file_size:
        raise StartupError(f"--upload-cache-mb {options.upload_cache_mb} is below --max-file-size "
                           f"{options.max_file_size}: no upload of the largest size could be taken; raise it.")


def search_threads(options: DemoOptions, cores: int | None = None) -> int:
    """Torch threads per search: ``--threads``, or the CPU cores shared by the searches that run at once.

    Several searches each with every core's thread would fight over the cores (on a busy 2-core
    machine a search took 4x longer with 2 threads than with 1); one search at a time still gets all.
    """
    if options.threads:
        return options.threads
    return max(1, (cores or os.cpu_count() or 1) // options.concurrency)


def ensure_port_free(host: str, port: int) -> None:
    """Raise :class:`StartupError` when nothing can listen on ``host:port`` (in use, or a bad address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StartupError(f"--host {host!r} cannot be resolved ({exc}).") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":  # as the server (uvicorn) binds: a port whose last connections are in TIME_WAIT
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # is free; a listening one is not
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise StartupError(f"port {port} on {host} is already in use: stop the server using it or pick "
                                   "another with --port / GRADIO_SERVER_PORT.") from None
            raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror or exc}).") from None


