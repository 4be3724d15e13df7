"""Demo options (command-line flags, each with an environment variable for Hugging Face Spaces) and
start-up: resolve the weights (local file or ``hf://``), load the model, read the gallery, build
the :class:`~demo.engine.SearchEngine`.

Every start-up problem is a :class:`StartupError` whose message says what to do; ``app.py``
prints it and exits non-zero without a stack trace.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from .feature_cache import FeatureCache, default_cache_dir
from .gallery import DATASETS, GalleryEntry, GalleryError, load_gallery, read_triples_folder
from .images import ImageDecodeError

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = "assets/demo_model.safetensors"
DEFAULT_GALLERY = "assets/demo/gallery"
DEFAULT_QUERIES = "assets/demo/query"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_EXAMPLES = 12
CREATE_ASSETS_HINT = ("The bundled demo assets are made by the synthetic benchmark (train/synthetic.py: it writes "
                      f"{DEFAULT_WEIGHTS}, {DEFAULT_GALLERY} and {DEFAULT_QUERIES}). Or point the demo at your own "
                      "files: --weights / SIGNAL_WEIGHTS (our .safetensors checkpoint, the authors' Signal_model.pth "
                      "with --dataset, or hf://owner/repo/path/file) and --gallery / SIGNAL_GALLERY (a triples "
                      "folder with RGB/, NI/, TI/, or a dataset folder with --dataset).")


class StartupError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


@dataclass
class DemoOptions:
    """Everything ``app.py`` can be told (see :func:`parse_options` for flags and variables)."""

    weights: str = DEFAULT_WEIGHTS
    gallery: str = DEFAULT_GALLERY
    queries: Optional[str] = DEFAULT_QUERIES
    dataset: Optional[str] = None
    device: str = "auto"
    precision: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    cache_dir: Optional[str] = None
    batch_size: int = 32
    max_file_size: int = 20  # MB per uploaded file


# (flag, environment variable, help); defaults are DemoOptions' field defaults.
OPTION_TABLE = [
    ("--weights", "SIGNAL_WEIGHTS", "model: our .safetensors checkpoint, the authors' Signal_model.pth (needs "
                                    "--dataset), or hf://owner/repo/path/file on the Hugging Face Hub"),
    ("--gallery", "SIGNAL_GALLERY", "gallery folder: a triples folder (RGB/, NI/, TI/ with the same file names) "
                                    "or a dataset folder (with --dataset; its test gallery is used)"),
    ("--queries", "SIGNAL_QUERIES", "triples folder of example queries shown under the inputs ('' for none)"),
    ("--dataset", "SIGNAL_DATASET", f"dataset preset {'|'.join(DATASETS)}: config of an authors' checkpoint and "
                                    "layout of a dataset gallery folder"),
    ("--device", "SIGNAL_DEVICE", f"{'|'.join(DEVICES)} (auto: cuda when available)"),
    ("--precision", "SIGNAL_PRECISION", f"{'|'.join(PRECISIONS)} inference precision"),
    ("--host", "GRADIO_SERVER_NAME", "address to listen on"),
    ("--port", "GRADIO_SERVER_PORT", "port to listen on"),
    ("--share", "SIGNAL_SHARE", "also open a public gradio.live link (1/true)"),
    ("--cache-dir", "SIGNAL_CACHE_DIR", "gallery-feature cache folder (default ~/.cache/signal-demo)"),
    ("--batch-size", "SIGNAL_BATCH_SIZE", "batch size of the gallery feature extraction"),
    ("--max-file-size", "SIGNAL_MAX_FILE_SIZE", "largest file a user may upload, in MB"),
]


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a :class:`StartupError` (one ``error:`` line) instead of exiting."""

    def error(self, message: str):
        raise StartupError(f"{message} (see app.py --help).")


def _truthy(value: str) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_options(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> DemoOptions:
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
        choices = {"--device": DEVICES, "--precision": PRECISIONS, "--dataset": DATASETS}.get(flag)
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
    if options.batch_size < 1:
        raise StartupError(f"--batch-size must be at least 1, got {options.batch_size}.")
    if not 1 <= options.port <= 65535:
        raise StartupError(f"--port must be from 1 to 65535, got {options.port}.")
    if options.max_file_size < 1:
        raise StartupError(f"--max-file-size must be at least 1 (MB), got {options.max_file_size}.")


def ensure_port_free(host: str, port: int) -> None:
    """Raise :class:`StartupError` when nothing can listen on ``host:port`` (in use, or a bad address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StartupError(f"--host {host!r} cannot be resolved ({exc}).") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise StartupError(f"port {port} on {host} is already in use: stop the server using it or pick "
                                   "another with --port / GRADIO_SERVER_PORT.") from None
            raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror or exc}).") from None


# --- weights and model ---------------------------------------------------------------------------
def resolve_weights(spec: str) -> Path:
    """A local path for ``spec``: a file, or ``hf://owner/repo/path/in/repo`` (optionally
    ``hf://owner/repo@revision/path``) downloaded with ``huggingface_hub.hf_hub_download``."""
    if spec.startswith("hf://"):
        parts = spec[len("hf://"):].split("/")
        if len(parts) < 3 or not all(parts):
            raise StartupError(f"{spec!r}: a Hub file is written hf://owner/repo/path/to/file.")
        repo, _, revision = f"{parts[0]}/{parts[1]}".partition("@")
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo_id=repo, filename="/".join(parts[2:]), revision=revision or None))
        except Exception as exc:  # noqa: BLE001 - network, auth, missing file: all told to the user
            raise StartupError(f"could not download {spec} from the Hugging Face Hub "
                               f"({exc.__class__.__name__}: {exc}).") from None
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    if not path.is_file():
        if spec == DEFAULT_WEIGHTS:
            raise StartupError(f"the bundled demo model {DEFAULT_WEIGHTS} is missing. {CREATE_ASSETS_HINT}")
        raise StartupError(f"weights file {path} not found.")
    return path


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StartupError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return torch.device(name)


def load_model(path: Path, dataset: Optional[str], device: torch.device, precision: str = "auto"):
    """Our safetensors checkpoint, or the authors' .pth with the ``dataset`` preset; on ``device``, in
    eval mode, with the inference precision set.

    Returns:
        (model, the precision in use, "fp32" or "bf16", for the feature cache key).
    """
    from signal_core import CheckpointError, SignalConfig, load_weights

    if path.suffix != ".safetensors" and not dataset:
        raise StartupError(f"{path.name} looks like the authors' checkpoint: pass --dataset "
                           f"({'|'.join(DATASETS)}) so that its config is known.")
    try:
        model = load_weights(path, SignalConfig.preset(dataset) if dataset else None, device)
    except Exception as exc:  # noqa: BLE001 - CheckpointError, SafetensorError, UnpicklingError, ...: all bad files
        kind = "" if isinstance(exc, CheckpointError) else f"{exc.__class__.__name__}: "
        detail = " ".join(str(exc).split()) or "unreadable file"
        raise StartupError(f"could not load the model from {path} ({kind}{detail}); is it a Signal checkpoint?") from None
    return model, model.set_inference_precision(precision)


def resolve_folder(spec: Optional[str], default: str) -> Optional[Path]:
    """A folder path; relative paths are also looked up under the repository root."""
    if not spec:
        return None
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return path


def load_examples(folder: Optional[Path], limit: int = MAX_EXAMPLES) -> list[GalleryEntry]:
    """Up to ``limit`` example query triples from a triples folder (none if absent or unreadable)."""
    if folder is None or not folder.is_dir():
        if folder is not None:
            log.warning("no example queries: %s does not exist", folder)
        return []
    try:
        entries = read_triples_folder(folder)
    except GalleryError as exc:
        log.warning("no example queries: %s", exc)
        return []
    step = max(1, len(entries) // limit)  # spread over the identities rather than the first few
    return entries[::step][:limit]


def build_engine(options: DemoOptions, progress: bool = True, check_port: bool = False):
    """Load everything the page needs (with ``check_port``, first make sure the port is free).

    Returns:
        (SearchEngine, example query entries).

    Raises:
        StartupError: with a message that says what to do.
    """
    from .engine import SearchEngine

    device = resolve_device(options.device)
    weights = resolve_weights(options.weights)
    if check_port:
        ensure_port_free(options.host, options.port)
    gallery_dir = resolve_folder(options.gallery, DEFAULT_GALLERY)
    if gallery_dir is None or not gallery_dir.is_dir():
        if options.gallery == DEFAULT_GALLERY:
            raise StartupError(f"the bundled demo gallery {DEFAULT_GALLERY} is missing. {CREATE_ASSETS_HINT}")
        raise StartupError(f"gallery folder {gallery_dir} does not exist.")
    try:
        gallery = load_gallery(gallery_dir, options.dataset)
    except GalleryError as exc:
        raise StartupError(str(exc)) from None
    model, precision = load_model(weights, options.dataset, device, options.precision)
    cache = FeatureCache(options.cache_dir or default_cache_dir())
    try:
        engine = SearchEngine.from_gallery(
            model, gallery, device, weights=weights, cache=cache,
            batch_size=options.batch_size, progress=progress,
            description=f"model {weights.name} · {gallery.source} · {device.type} · {precision}")
    except ImageDecodeError as exc:
        raise StartupError(f"a gallery image cannot be read: {exc}") from None
    return engine, load_examples(resolve_folder(options.queries, DEFAULT_QUERIES))


def served_paths(engine, examples: Sequence[GalleryEntry]) -> list[str]:
    """What the page may serve, and nothing more: this gallery's thumbnail folder(s), the folder of
    per-search images (overlays), and the example query files themselves."""
    paths = {str(Path(p).resolve()) for e in examples for p in e.paths}
    if engine.thumbnails is not None:
        paths.update(str(p.resolve()) for p in engine.thumbnails.folders)
    paths.add(str(engine.served.directory))
    return sorted(p for p in paths if not any(Path(p).is_relative_to(q) and p != q for q in paths))


def blocked_paths(engine) -> list[str]:
    """Files never to serve, even if a served folder held them: the feature cache file and the weights."""
    paths = [getattr(engine, "cache_path", None), getattr(engine, "weights_path", None)]
    return [str(Path(p).resolve()) for p in paths if p is not None]
