"""The page's "your own gallery" section: upload a zip or image files, load them, search them.

``/load_gallery`` (API): input the zip, output a status string; ``/load_files``: the same with a list
of files (the page's button: one zip, or image files named RGB_/NI_/TI_<name>). A refused upload is
a ``gr.Error`` (``gradio_client`` raises ``AppError`` with the message).
``/reset_gallery``: back to the default gallery. Both act on the caller's session only.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

import gradio as gr
from gradio_client import utils as client_utils

from signal_core.data.triples import TRIPLE_IMAGE_EXTENSIONS
from signal_core.utils.messages import bounded, markdown_text, shown

from .search import MAX_TOP_K
from .sessions import GalleryDropped, SessionGalleries, UploadBusy
from .upload_guard import remove_uploaded
from .uploads import UploadError

log = logging.getLogger(__name__)


def help_text(uploads: SessionGalleries) -> str:
    """What to upload, and the limits."""
    lim = uploads.limits
    return (
        "Upload **one zip of a triples folder** (`RGB/`, `NI/`, `TI/` holding the same file names, at the top of "
        "the zip or in one folder at its top) **or several image files named `RGB_<name>`, `NI_<name>`, "
        "`TI_<name>`** (e.g. `RGB_000001_cam1_000.png`: the three files of a triple share `<name>`), then press "
        "**Load gallery**: your searches then run on it; other visitors keep the default gallery. Names "
        "`PPPPPP_camK_*` give identity and camera. Other files are ignored (and listed). "
        f"Limits: {lim.max_triples} triples, {lim.max_total_bytes / 2**20:.0f} MB uncompressed, "
        f"{lim.max_member_bytes / 2**20:.0f} MB and {lim.max_pixels / 1e6:.0f} Mpx per image, "
        f"{lim.max_seconds:.0f} s. Your gallery is deleted when you close the page, after an hour unused, or when "
        "this server needs the room for other visitors' galleries (your next search then says so).")


def _error(message: str) -> gr.Error:
    return gr.Error(html.escape(bounded(message), quote=False), print_exception=False)


class FilesInput(gr.File):
    """A ``gr.File`` (file paths) that leaves no stray file: gradio's own makes an empty temporary file in its
    upload folder for every file it passes on, and never deletes it."""

    def get_block_name(self) -> str:
        return "file"

    def _process_single_file(self, f):
        from gradio.utils import NamedString

        if self.type != "filepath":
            return super()._process_single_file(f)
        if self.file_types and not client_utils.is_valid_file(f.path, self.file_types):
            raise _error(f"'{shown(Path(f.path).name)}' is not a zip or an image file: upload one zip of a triples "
                         "folder, or image files named RGB_<name>, NI_<name>, TI_<name>.")
        return NamedString(f.path)


class UploadSection:
    """The section's events that change the caller's gallery (a load that succeeded, a reset)."""

    def __init__(self, events: list):
        self.events = events

    def on_change(self, fn, outputs: list) -> None:
        """Run ``fn`` (no inputs) into ``outputs`` after each change of gallery (the page clears its results)."""
        for event in self.events:
            event.then(fn, inputs=None, outputs=outputs, api_visibility="private", queue=False)


def add_upload_section(page: gr.Blocks, uploads: SessionGalleries, top_k: gr.Slider) -> UploadSection:
    """The section's components and events (call inside ``with page``); ``top_k`` follows the gallery size."""

    def load(files, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - gradio's way of asking for a progress bar
        paths = [files] if isinstance(files, str) else list(files or [])
        try:
            status = uploads.load(getattr(request, "session_hash", None), paths,
                                  lambda done, total: progress((done, total), desc="gallery features",
                                                               unit="triples"))
        except UploadError as exc:
            log.info("upload refused: %s", shown(str(exc), 200))
            if not isinstance(exc, UploadBusy):  # refused for what it holds: nothing of it stays on the server
                remove_uploaded(paths)
            raise _error(f"Upload refused: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - keep serving whatever happens
            log.exception("loading an uploaded gallery failed")
            raise _error(f"Loading the gallery failed (internal error {exc.__class__.__name__}; it is logged on "
                         "the server).") from None
        # a loaded upload stays in gradio's folder (capped, cleaned hourly): gradio keeps identical uploads at one
        # path, so another visitor loading the same file may still need it
        return markdown_text(status)

    def reset(request: gr.Request):
        dropped = uploads.drop(getattr(request, "session_hash", None))
        return ("Back to the default gallery." if dropped else "You are searching the default gallery.")

    def fit_top_k(value: float, request: gr.Request):
        try:
            n = len(uploads.engine_for(getattr(request, "session_hash", None)).gallery)
        except GalleryDropped:
            return gr.skip()
        limit = max(1, min(MAX_TOP_K, n))
        return gr.Slider(maximum=limit, value=min(max(1, int(value)), limit))

    def end(request: gr.Request):
        uploads.drop(getattr(request, "session_hash", None))

    with gr.Accordion("Search your own gallery", open=False, elem_id="own-gallery"):
        gr.Markdown(help_text(uploads))
        files = FilesInput(label="Zip of a triples folder, or RGB_/NI_/TI_ image files", file_count="multiple",
                        file_types=[".zip", *TRIPLE_IMAGE_EXTENSIONS], elem_id="upload-files")
        with gr.Row():
            load_button = gr.Button("Load gallery", variant="primary", elem_id="load-gallery")
            reset_button = gr.Button("Back to the default gallery", elem_id="reset-gallery")
        status = gr.Markdown("You are searching the default gallery.", elem_id="upload-status")
        api_zip = FilesInput(file_count="single", file_types=[".zip"], visible=False)  # /load_gallery's input
        api_button = gr.Button(visible=False)
    changed = []
    for button, source, name in ((load_button, files, "load_files"), (api_button, api_zip, "load_gallery")):
        clicked = button.click(load, inputs=[source], outputs=[status], api_name=name,
                               concurrency_limit=uploads.limits.max_concurrent, concurrency_id="upload")
        # loaded or refused, the list is emptied (a refused upload's files were removed from the server)
        clicked.then(lambda: None, inputs=None, outputs=[source], api_visibility="private", queue=False)
        changed.append(clicked.success(fit_top_k, inputs=[top_k], outputs=[top_k], api_visibility="private"))
    reset = reset_button.click(reset, inputs=None, outputs=[status], api_name="reset_gallery").then(
        fit_top_k, inputs=[top_k], outputs=[top_k], api_visibility="private")
    page.unload(end)
    return UploadSection([*changed, reset])
