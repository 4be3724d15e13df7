"""Signal demo: ``python app.py [--weights ...] [--gallery DIR] ...`` (``--help`` lists the options).

Starts a Gradio page on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)
searching the bundled demo gallery with the bundled demo model. Also the Hugging Face Space entry.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse options, load the model and gallery, serve the page; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from demo.cli import StartupError, build_engine, parse_options, served_folders
    from signal_core.runtime import keep_freed_memory

    keep_freed_memory()  # faster large CPU tensors (signal_core/runtime.py)

    options = parse_options(argv)
    try:
        engine, examples = build_engine(options)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from demo.ui import build_ui, launch

    launch(build_ui(engine, examples), options.host, options.port, options.share,
           allowed_paths=served_folders(engine, examples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
