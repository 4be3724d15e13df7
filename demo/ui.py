"""The Gradio page: three image inputs, a Search button, the ranked gallery and the overlays.

A click on Search runs two steps: the ranked results with their part scores, then the query's
explanation drawn in the chosen view (the results show as soon as they exist). The API has
``/search`` with inputs (rgb, nir, tir, top_k, camera) and outputs (ranked gallery, status markdown,
the three query overlays of the "kept tokens" view), and ``/search_json`` with the same inputs,
returning the matches with their part scores as JSON, without drawing anything
(:func:`demo.text.result_json`). A bad input is a ``gr.Error`` with the message (gradio's
convention: the page shows it, ``gradio_client`` raises it); an unexpected error is logged and
reported the same way, and the server keeps serving (the event functions: :mod:`demo.handlers`).

Every image sent to the page is a file the demo wrote atomically in a folder served as is
(:mod:`demo.served`): gallery thumbnails, per-search overlays; plus the example query files.
Nothing else is served (see :func:`launch`).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.data_classes import ImageData
from gradio_client.utils import is_file_obj_with_meta
from pydantic import ConfigDict, model_validator

from signal_core.modalities import LABELS, MODALITIES
from signal_core.utils.messages import shown
from signal_core.viz import heat_legend_html, legend_html
from signal_core.viz.registration import legend_html as registration_legend_html

from .explain import VIEWS, views
from .gallery import GalleryEntry
from .handlers import PageHandlers, user_error
from .search import MAX_TOP_K, UNKNOWN_CAMERA, SearchEngine
from .sessions import SessionGalleries
from .upload_guard import UploadGuard
from .upload_ui import add_upload_section

TITLE = "Signal: multi-modal object re-identification"
INTRO = ("Give a query object as up to three images (RGB, near infrared, thermal infrared), or click an "
         "example, and press **Search**: the gallery is ranked by the cosine similarity of Signal's "
         "features. A modality left empty (or unticked) is zeroed in the query and in the gallery, as in the "
         "missing-modality protocol (the status says so). Below, what the "
         "model looked at: the tokens its selective interaction (SIM) kept and where its local "
         "alignment (LAM) sampled, or the scores SIM selected them by; click a result to compare and to "
         "see its similarity split by part of the feature. Untick a modality to see how the ranks move "
         "without it. Scripts: the `/search_json` API (README).")
CSS = (".signal-legend {font-size: 0.9em; padding: 0.3em 0;}\n"  # captions wrap: rank, id, camera, score, parts
       "#results .caption-label {white-space: normal !important; overflow: visible !important; "
       "text-overflow: clip !important; max-width: 100% !important; line-height: 1.25;}")
MAX_FILE_SIZE_MB = 20  # default upload limit per file
DELETE_CACHE = (3600, 3600)  # every hour, delete uploads older than an hour (gradio's delete_cache)
UPLOAD_CACHE_MB = 1024  # default cap of gradio's upload folder (demo/upload_guard.py)
NOT_A_FILE = "\0not a file: "  # how ImagePayload marks a value that is no file (no file name holds a NUL)


class ImagePayload(ImageData):
    """gradio's image payload, where a value that is no file at all (a number, a bare string, a dict
    without a path) passes as an empty file noting what it was: :class:`ImageInput` then refuses it in
    one line (gradio's own validation would log a traceback and show pydantic's text)."""

    model_config = ConfigDict(title="ImageData")  # the API's description stays gradio's

    @model_validator(mode="before")
    @classmethod
    def _any_value(cls, value):
        if is_file_obj_with_meta(value):
            return value
        return {"path": "", "orig_name": NOT_A_FILE + shown(value, 40), "meta": {"_type": "gradio.FileData"}}


class ImageInput(gr.Image):
    """A ``gr.Image`` whose pre-processing fails only with a clear message.

    Gradio opens uploads with PIL before the handler runs; a file PIL cannot open would fail there
    with a generic error. Here such a file reaches the handler as its path, where
    :func:`signal_core.data.images.decode_image` gives the user a clear message. A payload with no readable
    file at all (a number, a path outside the upload folder) is an error naming the modality, not a
    missing one.
    """

    data_model = ImagePayload
    modality_label = "image"  # set per input ("RGB", ...); not a constructor argument, as gradio sends
    # the constructor's arguments to the page as the component's properties

    def get_block_name(self) -> str:  # same front-end component as gr.Image
        return "image"

    def preprocess(self, payload):
        if payload is None:
            return None
        given = getattr(payload, "orig_name", None) or ""
        if given.startswith(NOT_A_FILE):
            raise user_error(f"{self.modality_label} input: not an image file (got {given[len(NOT_A_FILE):]}): "
                             "send a file (gradio_client's handle_file(path)).")
        try:
            value = super().preprocess(payload)
        except Exception:  # noqa: BLE001 - reported by the handler's own decoder when there is a file
            value = getattr(payload, "path", None)
        if not value or not Path(str(value)).is_file():
            raise user_error(f"{self.modality_label} input: not an image (no readable file was received).")
        return value


class _Checked:
    """A gradio input whose value our code checks: gradio's own pre-processing failing (a string for the
    slider, a list for the dropdown, ...) passes the raw value on, and the engine's message names what is
    wrong in one line (gradio would log a traceback and show its internals)."""

    def get_block_name(self) -> str:  # the same front-end component as the gradio class
        return type(self).__mro__[2].__name__.lower()

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001 - checked by the handler (engine.parse_top_k, parse_camera, switched_on)
            return payload


class TopKInput(_Checked, gr.Slider):
    pass


class CameraInput(_Checked, gr.Dropdown):
    pass


class ModalitiesInput(_Checked, gr.CheckboxGroup):
    pass


@dataclass
class QueryInputs:
    """The query section's components: three images, top k, the camera, the modality switch, Search."""

    images: list[gr.Image]
    top_k: gr.Slider
    camera: gr.Dropdown
    modalities: gr.CheckboxGroup
    button: gr.Button


@dataclass
class ExplanationOutputs:
    """The explanation section's components: the view switch, the query's and the selected result's overlays."""

    view: gr.Radio
    query_overlays: list[gr.Image]
    selected_text: gr.Markdown
    selected_overlays: list[gr.Image]


def build_ui(engine: SearchEngine, examples: Sequence[GalleryEntry] = (), title: str = TITLE,
             uploads: SessionGalleries | None = None) -> gr.Blocks:
    """The page for ``engine``; ``examples`` are query triples offered under the inputs; with ``uploads``,
    visitors may load their own gallery (:mod:`demo.upload_ui`) and their searches run on it."""
    handlers = PageHandlers(engine, uploads)
    with _one_event_loop(), gr.Blocks(title="Signal ReID demo", delete_cache=DELETE_CACHE) as page:
        add_header(engine, title)
        query = add_query_inputs(engine)
        add_examples(examples, query, engine)
        upload_section = add_upload_section(page, uploads, query.top_k) if uploads is not None else None
        status, results = add_results()
        explanation = add_explanation(engine.model.cfg.registration)
        rank_outputs = wire_page_events(handlers, query, status, results, explanation)
        add_apis(handlers, query, status, results, explanation)
        if upload_section is not None:  # a new gallery, or back to the default: the old results go
            upload_section.on_change(lambda: handlers.cleared("Give a query and press Search (the gallery changed)."),
                                     rank_outputs)
    return page


def add_header(engine: SearchEngine, title: str) -> None:
    """The title, the introduction and what the default gallery is."""
    gr.Markdown(f"# {title}\n{INTRO}")
    if engine.description:
        gr.Markdown(f"<small>{engine.description} · default gallery: {len(engine.gallery)} triples</small>")


def add_query_inputs(engine: SearchEngine) -> QueryInputs:
    """The query: one image input per modality, then top k, the camera, the modality switch and Search."""
    n = len(engine.gallery)
    with gr.Row():
        images = [ImageInput(label=f"{LABELS[m]} query", type="filepath", image_mode=None,
                             sources=["upload", "clipboard"], height=240, elem_id=f"query-{m}")
                  for m in MODALITIES]
        for modality, image_input in zip(MODALITIES, images):
            image_input.modality_label = LABELS[modality]
    with gr.Row(equal_height=True):
        top_k = TopKInput(1, max(1, min(MAX_TOP_K, n)), value=min(10, n), step=1, label="Top k", elem_id="top-k")
        camera = CameraInput(engine.camera_choices, value=UNKNOWN_CAMERA, label="Query camera",
                             info="unknown = mean camera embedding", elem_id="camera",
                             allow_custom_value=True)  # checked by the engine, with a message naming the file
        modalities = ModalitiesInput([LABELS[m] for m in MODALITIES], value=[LABELS[m] for m in MODALITIES],
                                     label="Search with", info="untick one to see how the ranks move",
                                     elem_id="modalities")
        button = gr.Button("Search", variant="primary", elem_id="search-button")
    return QueryInputs(images, top_k, camera, modalities, button)


def add_examples(examples: Sequence[GalleryEntry], query: QueryInputs, engine: SearchEngine) -> None:
    """The example queries under the inputs (a click fills the images and the camera); none without examples."""
    if examples:
        gr.Examples(examples=[[*e.paths, _camera_label(e, engine)] for e in examples],
                    inputs=[*query.images, query.camera], label="Example queries (click one)", examples_per_page=6,
                    cache_examples=False)  # they fill the inputs; never computed at start (Spaces would)


def add_results() -> tuple[gr.Markdown, gr.Gallery]:
    """The status line and the ranked gallery."""
    status = gr.Markdown("Give a query and press Search.", elem_id="status")
    results = gr.Gallery(label="Ranked gallery (RGB | NIR | TIR)", columns=5, height="auto",
                         object_fit="contain", allow_preview=False, elem_id="results")
    return status, results


def add_explanation(registration: str = "none") -> ExplanationOutputs:
    """What the model looked at: the view switch, its legends, the query's and the selected result's overlays;
    for a model with image-level ``registration``, a third view of what it did."""
    gr.Markdown("### What the model looked at")
    registered = registration != "none"
    arrows = ("at their true length: they include the displacement registration found" if registered else
              "lengthened at most x5: the factor and the real mean offset are written on each image")
    more = (f"; registration ({registration}): NIR / TIR edges over RGB before and after it, and the displacement "
            "it found at its true length") if registered else ""
    view = gr.Radio(list(views(registered)), value=VIEWS[0], label="View", elem_id="view",
                    info=f"kept tokens: SIM's selection and LAM's sampling (arrows {arrows}); SIM scores: the intra- "
                         f"and inter-modal scores SIM selects by{more}")
    gr.HTML(legend_html() + heat_legend_html() + (registration_legend_html() if registered else ""))
    with gr.Row():
        query_overlays = [gr.Image(label=f"Query {LABELS[m]}", type="filepath", interactive=False,
                                   height=300, elem_id=f"query-overlay-{m}") for m in MODALITIES]
    selected_text = gr.Markdown("", elem_id="selected")
    with gr.Row():
        selected_overlays = [gr.Image(label=f"Selected result {LABELS[m]}", type="filepath",
                                      interactive=False, height=300, elem_id=f"selected-overlay-{m}")
                             for m in MODALITIES]
    return ExplanationOutputs(view, query_overlays, selected_text, selected_overlays)


def wire_page_events(handlers: PageHandlers, query: QueryInputs, status: gr.Markdown, results: gr.Gallery,
                     explanation: ExplanationOutputs) -> list:
    """Search, the modality switch, a click on a result and the view switch; returns the rank outputs."""
    view, query_overlays = explanation.view, explanation.query_overlays
    selected_overlays, selected_text = explanation.selected_overlays, explanation.selected_text
    # the drawings of the query and of the selected result (drawn per view when first shown)
    matches_state = gr.State({"gallery": None, "matches": []})  # the listed results, keyed by their gallery
    query_drawings, selected_drawings = gr.State(None), gr.State(None)
    rank_inputs = [*query.images, query.top_k, query.camera, query.modalities]
    rank_outputs = [results, status, matches_state, *selected_overlays, selected_text, query_drawings,
                    selected_drawings, *query_overlays]
    # results first, the query's drawings after (a click shows the ranking sooner); the ranking is a
    # direct request (queue=False: no queue round trip, about 30 ms less per click), the drawing queued
    ranked = query.button.click(handlers.rank, inputs=rank_inputs, outputs=rank_outputs,
                                api_visibility="private", queue=False)
    ranked.success(handlers.draw, inputs=[query_drawings, view], outputs=query_overlays, api_visibility="private")
    ranked_again = query.modalities.input(handlers.rank_again, inputs=rank_inputs, outputs=rank_outputs,
                                          api_visibility="private")
    ranked_again.success(handlers.draw, inputs=[query_drawings, view], outputs=query_overlays,
                         api_visibility="private")
    results.select(handlers.select, inputs=[matches_state, view],
                   outputs=[*selected_overlays, selected_text, selected_drawings], api_visibility="private")
    view.change(handlers.show_view, inputs=[view, query_drawings, selected_drawings],
                outputs=[*query_overlays, *selected_overlays], api_visibility="private")
    return rank_outputs


def add_apis(handlers: PageHandlers, query: QueryInputs, status: gr.Markdown, results: gr.Gallery,
             explanation: ExplanationOutputs) -> None:
    """The ``/search`` and ``/search_json`` APIs, on hidden buttons: the query's inputs without the switch."""
    api_inputs = [*query.images, query.top_k, query.camera]
    search_trigger = gr.Button(visible=False)
    search_trigger.click(handlers.search, inputs=api_inputs, outputs=[results, status, *explanation.query_overlays],
                         api_name="search")
    json_trigger, json_out = gr.Button(visible=False), gr.JSON(visible=False)
    json_trigger.click(handlers.search_json, inputs=api_inputs, outputs=json_out, api_name="search_json")


def _camera_label(entry: GalleryEntry, engine: SearchEngine) -> str:
    """The dropdown value for an example's camera ("unknown" when not known to the model)."""
    if not 0 <= entry.camid < engine.num_cameras:
        return UNKNOWN_CAMERA
    return str(entry.camid + 1)


def serve_files(paths: Sequence[str]) -> list[str]:
    """Register ``paths`` (files or folders) as gradio static paths: served as they are, never copied.

    Call before :func:`build_ui` so that the example query files are not copied either.
    """
    resolved = [str(Path(p).resolve()) for p in paths]
    gr.set_static_paths(resolved)
    return resolved


_PAGE_LOOP: list[asyncio.AbstractEventLoop] = []  # the one loop of _one_event_loop, open for the process


@contextmanager
def _one_event_loop() -> Iterator[None]:
    """While the page is built and queued, gradio's locks get one event loop, kept open.

    Outside a running loop, gradio makes a new asyncio loop for every lock and event it creates (``safe_get_lock``)
    and drops it unclosed; a dropped loop collected on another thread (the reload thread gradio starts under
    ``SYSTEM=spaces``) logs "Exception ignored in BaseEventLoop.__del__ ... Invalid file descriptor".
    """
    if not _PAGE_LOOP:
        _PAGE_LOOP.append(asyncio.new_event_loop())
    original = asyncio.new_event_loop
    asyncio.new_event_loop = lambda: _PAGE_LOOP[0]
    try:
        yield
    finally:
        asyncio.new_event_loop = original


def launch(page: gr.Blocks, host: str, port: int, share: bool = False, served_paths: Sequence[str] = (),
           blocked_paths: Sequence[str] = (), max_file_size_mb: float = MAX_FILE_SIZE_MB,
           prevent_thread_lock: bool = False, concurrency: int = 4, upload_cache_mb: float = UPLOAD_CACHE_MB):
    """Queue and launch ``page``.

    Args:
        served_paths: the only files and folders the page serves besides its uploads (thumbnail and
            per-search image folders, example query files); registered as gradio static paths, so
            they are served as they are on disk, never copied into gradio's cache.
        blocked_paths: never served, whatever else says (the feature cache, the weights).
        max_file_size_mb: limit per file, uploaded or embedded in a request (a data: URL).
        upload_cache_mb: gradio's upload folder holds at most this much, embedded files included
            (:mod:`demo.upload_guard`).
    """
    from starlette.middleware import Middleware

    paths = serve_files(served_paths)
    with _one_event_loop():
        page.queue(default_concurrency_limit=concurrency, max_size=256)
        guard = Middleware(UploadGuard, max_bytes=int(upload_cache_mb * 2**20),
                           max_file_bytes=int(max_file_size_mb * 2**20), served=paths)
        started = page.launch(
            server_name=host, server_port=port, share=share, allowed_paths=paths,
            blocked_paths=[str(Path(p).resolve()) for p in blocked_paths],
            max_file_size=int(max_file_size_mb * 1024 * 1024),
            prevent_thread_lock=True, css=CSS, show_error=True, quiet=False, app_kwargs={"middleware": [guard]})
    if not prevent_thread_lock:
        page.block_thread()  # serves until Ctrl-C / SIGTERM, then closes the server
    return started
