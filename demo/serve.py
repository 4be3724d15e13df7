"""The demo's process: ``python app.py`` (and a Space's ``app.py``, :mod:`demo.space`) call :func:`main`.

Starts a Gradio page on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)
searching the bundled demo gallery with the bundled demo model.
Any start-up problem (bad option, busy port, unreadable weights or gallery) is one ``error:`` line
on stderr and exit status 2. SIGTERM (how containers and Spaces stop a process) stops it as Ctrl-C
(SIGINT) does: the server closes and the visitors' galleries and per-search images are removed.
"""
from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, load the model and gallery, serve the page; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build it tried is noise here
    try:
        import demo.startup  # noqa: F401 - every package the demo needs (torch, gradio, faiss, ...) is there
        import demo.ui  # noqa: F401
        from signal_core.utils.allocator import keep_freed_memory
    except ModuleNotFoundError as exc:  # a partial install: one line that says what to install
        print(f"error: the demo needs the {exc.name} package ({' '.join(str(exc).split())}): "
              "pip install -r requirements.txt", file=sys.stderr)
        return 2

    keep_freed_memory()  # faster large CPU tensors (signal_core/utils/allocator.py)
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the server closes, the exit clean-up runs
    try:
        return _serve(argv)
    except KeyboardInterrupt:  # stopped before the page was serving (else gradio closes it and returns)
        import gradio as gr

        gr.close_all()  # a server started meanwhile would keep the process alive
        print("stopped.", file=sys.stderr)
        return 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve(argv: Sequence[str] | None) -> int:
    """Start up and serve until stopped."""
    from demo.options import StartupError, parse_options
    from demo.startup import blocked_paths, build_engine, served_paths
    from signal_core.utils.allocator import keep_freed_memory

    keep_freed_memory()  # faster large CPU tensors (signal_core/utils/allocator.py)
    try:
        options = parse_options(argv)
        engine, examples = build_engine(options, check_port=True)  # the port is checked before loading
    except StartupError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    import torch

    from demo.options import search_threads
    from demo.sessions import from_options
    from demo.ui import build_ui, launch, serve_files

    torch.set_num_threads(search_threads(options))  # after the gallery features, made with every core
    uploads = from_options(engine, options)  # visitors' own galleries; their thumbnails are served
    extra = [] if uploads is None else [str(uploads.thumbs_root)]
    served = serve_files(served_paths(engine, examples) + extra)  # before build_ui: examples are served, not copied
    try:
        launch(build_ui(engine, examples, uploads=uploads), options.host, options.port, options.share,
               served_paths=served, blocked_paths=blocked_paths(engine), max_file_size_mb=options.max_file_size,
               concurrency=options.concurrency, upload_cache_mb=options.upload_cache_mb)
    except OSError as exc:  # the port was taken between the check and the launch
        print(f"error: cannot serve on {options.host}:{options.port} ({' '.join(str(exc).split())}).",
              file=sys.stderr)
        return 2
    return 0
