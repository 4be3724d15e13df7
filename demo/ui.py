"""The Gradio page: three image inputs, a Search button, the ranked gallery and the overlays.

A click on Search runs two steps: the ranked results with their part scores, then the query's
explanation drawn in the chosen view (the results show as soon as they exist). The API has
``/search`` with inputs (rgb, nir, tir, top_k, camera) and outputs (ranked gallery, status markdown,
the three query overlays of the "kept tokens" view), and ``/search_json`` with the same inputs,
returning the matches with their part scores as JSON, without drawing anything
(:func:`demo.text.result_json`). A bad input is a ``gr.Error`` with the message (gradio's
convention: the page shows it, ``gradio_client`` raises it); an unexpected error is logged and
reported the same way, and the server keeps serving.

Every image sent to the page is a file the demo wrote atomically in a folder served as is
(:mod:`demo.served`): gallery thumbnails, per-search overlays; plus the example query files.
Nothing else is served (see :func:`launch`).
"""
from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from signal_core.modalities import LABELS, MODALITIES
from signal_core.viz import heat_legend_html, legend_html

from . import text
from .explain import VIEWS
from .gallery import GalleryEntry
from .search import MAX_TOP_K, UNKNOWN_CAMERA, QueryError, SearchEngine
from .sessions import SessionGalleries
from .upload_ui import add_upload_section

log = logging.getLogger(__name__)
TITLE = "Signal: multi-modal object re-identification"
INTRO = ("Give a query object as up to three images (RGB, near infrared, thermal infrared), or click an "
         "example, and press **Search**: the gallery is ranked by the cosine similarity of Signal's "
         "features. A modality left empty is zeroed, as in the missing-modality protocol. Below, what the "
         "model looked at: the tokens its selective interaction (SIM) kept and where its local "
         "alignment (LAM) sampled, or the scores SIM selected them by; click a result to compare and to "
         "see its similarity split by part of the feature. Untick a modality to see how the ranks move "
         "without it. Scripts: the `/search_json` API (README).")
CSS = (".signal-legend {font-size: 0.9em; padding: 0.3em 0;}\n"  # captions wrap: rank, id, camera, score, parts
       "#results .caption-label {white-space: normal !important; overflow: visible !important; "
       "text-overflow: clip !important; max-width: 100% !important; line-height: 1.25;}")
MAX_FILE_SIZE_MB = 20  # default upload limit per file
DELETE_CACHE = (3600, 3600)  # every hour, delete uploads older than an hour (gradio's delete_cache)


def user_error(message: str) -> gr.Error:
    """A ``gr.Error`` showing ``message`` as text (it is rendered as HTML otherwise), no traceback logged."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


class ImageInput(gr.Image):
    """A ``gr.Image`` whose pre-processing fails only with a clear message.

    Gradio opens uploads with PIL before the handler runs; a file PIL cannot open would fail there
    with a generic error. Here such a file reaches the handler as its path, where
    :func:`demo.images.decode_image` gives the user a clear message. A payload with no readable
    file at all (e.g. a data: URL of garbage) is an error naming the modality, not a missing one.
    """

    modality_label = "image"  # set per input ("RGB", ...); not a constructor argument, as gradio sends
    # the constructor's arguments to the page as the component's properties

    def get_block_name(self) -> str:  # same front-end component as gr.Image
        return "image"

    def preprocess(self, payload):
        if payload is None:
            return None
        try:
            value = super().preprocess(payload)
        except Exception:  # noqa: BLE001 - reported by the handler's own decoder when there is a file
            value = getattr(payload, "path", None)
        if not value or not Path(str(value)).is_file():
            raise user_error(f"{self.modality_label} input: not an image (no readable file was received).")
        return value


def run_safely(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a QueryError becomes its message, anything else "``what`` failed (...)"."""
    try:
        return fn(*args, **kwargs)
    except QueryError as exc:
        raise user_error(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - keep serving whatever happens
        log.exception("%s failed", what)
        raise user_error(f"{what} failed ({exc.__class__.__name__}: {exc}).") from None


def switched_on(labels: Sequence[str] | None) -> tuple[str, ...] | None:
    """The modality switch's ticked labels ("RGB", ...) as modality names; None (not given): all on."""
    if labels is None:
        return None
    by_label = {LABELS[m]: m for m in MODALITIES}
    return tuple(by_label[label] for label in labels if label in by_label)


def build_ui(engine: SearchEngine, examples: Sequence[GalleryEntry] = (), title: str = TITLE,
             uploads: SessionGalleries | None = None) -> gr.Blocks:
    """The page for ``engine``; ``examples`` are query triples offered under the inputs; with ``uploads``,
    visitors may load their own gallery (:mod:`demo.upload_ui`) and their searches run on it."""
    n = len(engine.gallery)
    default_engine = engine

    def saved(drawings, view: str) -> list[str | None]:
        """The PNG files of one view of ``drawings`` (drawn now if not yet); three Nones without drawings."""
        if drawings is None:
            return [None] * 3
        return run_safely("Drawing the explanation", lambda: [engine.served.save_png(o) for o in drawings.view(view)])

    def rank(rgb: str | None, nir: str | None, tir: str | None, top_k: float = 10,
             camera: str = UNKNOWN_CAMERA, modalities: list[str] | None = None, request: gr.Request = None):
        """The page's search, step 1: the ranked results (the query's drawings follow in :func:`draw`)."""
        engine = session_engine(uploads, request, default_engine)
        result = run_safely("Search", engine.search, rgb, nir, tir, top_k, camera,
                            switched_on=switched_on(modalities))
        # a missing modality is said in the status (a toast cannot reach the page from a direct request)
        gallery_value = [(m.thumbnail, text.caption(m)) for m in result.matches]
        matches = [{"index": m.index, "caption": text.caption(m), "parts": text.parts_table(m, result.previous_depth)}
                   for m in result.matches]
        summary = text.summary(result, len(engine.gallery))
        return (gallery_value, summary, matches, None, None, None,
                "Click a result above to see what the model looked at in it and its score by part.",
                result.drawings, None)

    def draw(drawings, view: str):
        """The page's search, step 2: the query's explanation in the chosen view."""
        return tuple(saved(drawings, view))

    def search(rgb: str | None, nir: str | None, tir: str | None, top_k: float = 10,
               camera: str = UNKNOWN_CAMERA, request: gr.Request = None):
        """The ``/search`` API: the ranked gallery, the status text and the query's kept-token drawings."""
        gallery_value, summary, *_, drawings, _ = rank(rgb, nir, tir, top_k, camera, request=request)
        return (gallery_value, summary, *saved(drawings, VIEWS[0]))

    def rank_again(rgb: str | None, nir: str | None, tir: str | None, top_k: float, camera: str,
                   modalities: list[str] | None, request: gr.Request = None):
        """The modality switch re-runs a search once there are query images (nothing otherwise)."""
        if not (rgb or nir or tir):
            return tuple(gr.skip() for _ in rank_outputs)
        return rank(rgb, nir, tir, top_k, camera, modalities, request=request)

    def search_json(rgb: str | None, nir: str | None, tir: str | None, top_k: float = 10,
                    camera: str = UNKNOWN_CAMERA, request: gr.Request = None) -> dict:
        engine = session_engine(uploads, request, default_engine)
        result = run_safely("Search", engine.search, rgb, nir, tir, top_k, camera, explain=False)
        return text.result_json(result)

    def select(matches: list, view: str, evt: gr.SelectData, request: gr.Request = None):
        engine = session_engine(uploads, request, default_engine)
        match = matches[evt.index]
        drawings = run_safely("Explaining this result", engine.explain_entry, match["index"])
        entry = engine.gallery.entries[match["index"]]
        return (*saved(drawings, view), f"**Selected {match['caption']}** · `{entry.name}`\n\n{match['parts']}",
                drawings)

    def show_view(view: str, query_drawings, selected_drawings):
        return (*saved(query_drawings, view), *saved(selected_drawings, view))

    with gr.Blocks(title="Signal ReID demo", delete_cache=DELETE_CACHE) as page:
        gr.Markdown(f"# {title}\n{INTRO}")
        if engine.description:
            gr.Markdown(f"<small>{engine.description} · default gallery: {n} triples</small>")
        with gr.Row():
            inputs = [ImageInput(label=f"{LABELS[m]} query", type="filepath", image_mode=None,
                                 sources=["upload", "clipboard"], height=240, elem_id=f"query-{m}")
                      for m in MODALITIES]
            for modality, image_input in zip(MODALITIES, inputs):
                image_input.modality_label = LABELS[modality]
        with gr.Row(equal_height=True):
            top_k = gr.Slider(1, max(1, min(MAX_TOP_K, n)), value=min(10, n), step=1, label="Top k",
                              elem_id="top-k")
            camera = gr.Dropdown(engine.camera_choices, value=UNKNOWN_CAMERA, label="Query camera",
                                 info="unknown = mean camera embedding", elem_id="camera",
                                 allow_custom_value=True)  # checked by the engine, with a message naming the file
            modalities = gr.CheckboxGroup([LABELS[m] for m in MODALITIES], value=[LABELS[m] for m in MODALITIES],
                                          label="Search with", info="untick one to see how the ranks move",
                                          elem_id="modalities")
            button = gr.Button("Search", variant="primary", elem_id="search-button")
        if examples:
            gr.Examples(examples=[[*e.paths, _camera_label(e, engine)] for e in examples],
                        inputs=[*inputs, camera], label="Example queries (click one)", examples_per_page=6)
        if uploads is not None:
            add_upload_section(page, uploads, top_k)
        status = gr.Markdown("Give a query and press Search.", elem_id="status")
        results = gr.Gallery(label="Ranked gallery (RGB | NIR | TIR)", columns=5, height="auto",
                             object_fit="contain", allow_preview=False, elem_id="results")
        gr.Markdown("### What the model looked at")
        view = gr.Radio(list(VIEWS), value=VIEWS[0], label="View", elem_id="view",
                        info="kept tokens: SIM's selection and LAM's sampling (arrows lengthened by the factor "
                             "written on each image); SIM scores: the intra- and inter-modal scores SIM selects by")
        gr.HTML(legend_html() + heat_legend_html())
        with gr.Row():
            query_overlays = [gr.Image(label=f"Query {LABELS[m]}", type="filepath", interactive=False,
                                       height=300, elem_id=f"query-overlay-{m}") for m in MODALITIES]
        selected_text = gr.Markdown("", elem_id="selected")
        with gr.Row():
            selected_overlays = [gr.Image(label=f"Selected result {LABELS[m]}", type="filepath",
                                          interactive=False, height=300, elem_id=f"selected-overlay-{m}")
                                 for m in MODALITIES]
        # the drawings of the query and of the selected result (drawn per view when first shown)
        matches_state, query_drawings, selected_drawings = gr.State([]), gr.State(None), gr.State(None)
        rank_inputs = [*inputs, top_k, camera, modalities]
        rank_outputs = [results, status, matches_state, *selected_overlays, selected_text, query_drawings,
                        selected_drawings]
        # results first, the query's drawings after (a click shows the ranking sooner); the ranking is a
        # direct request (queue=False: no queue round trip, about 30 ms less per click), the drawing queued
        button.click(rank, inputs=rank_inputs, outputs=rank_outputs, api_visibility="private", queue=False).success(
            draw, inputs=[query_drawings, view], outputs=query_overlays, api_visibility="private")
        modalities.input(rank_again, inputs=rank_inputs, outputs=rank_outputs, api_visibility="private").success(
            draw, inputs=[query_drawings, view], outputs=query_overlays, api_visibility="private")
        results.select(select, inputs=[matches_state, view],
                       outputs=[*selected_overlays, selected_text, selected_drawings], api_visibility="private")
        view.change(show_view, inputs=[view, query_drawings, selected_drawings],
                    outputs=[*query_overlays, *selected_overlays], api_visibility="private")
        search_trigger = gr.Button(visible=False)
        search_trigger.click(search, inputs=[*inputs, top_k, camera], outputs=[results, status, *query_overlays],
                             api_name="search")
        json_trigger, json_out = gr.Button(visible=False), gr.JSON(visible=False)
        json_trigger.click(search_json, inputs=[*inputs, top_k, camera], outputs=json_out, api_name="search_json")
    return page


def session_engine(uploads: SessionGalleries | None, request: gr.Request | None, default: SearchEngine):
    """The engine of the caller's session: its uploaded gallery, else ``default``."""
    return default if uploads is None else uploads.engine_for(getattr(request, "session_hash", None))


def _camera_label(entry: GalleryEntry, engine: SearchEngine) -> str:
    """The dropdown value for an example's camera ("unknown" when not known to the model)."""
    if entry.camid is None or not 0 <= entry.camid < engine.num_cameras:
        return UNKNOWN_CAMERA
    return str(entry.camid + 1)


def serve_files(paths: Sequence[str]) -> list[str]:
    """Register ``paths`` (files or folders) as gradio static paths: served as they are, never copied.

    Call before :func:`build_ui` so that the example query files are not copied either.
    """
    resolved = [str(Path(p).resolve()) for p in paths]
    gr.set_static_paths(resolved)
    return resolved


def launch(page: gr.Blocks, host: str, port: int, share: bool = False, served_paths: Sequence[str] = (),
           blocked_paths: Sequence[str] = (), max_file_size_mb: float = MAX_FILE_SIZE_MB,
           prevent_thread_lock: bool = False, concurrency: int = 4):
    """Queue and launch ``page``.

    Args:
        served_paths: the only files and folders the page serves besides its uploads (thumbnail and
            per-search image folders, example query files); registered as gradio static paths, so
            they are served as they are on disk, never copied into gradio's cache.
        blocked_paths: never served, whatever else says (the feature cache, the weights).
        max_file_size_mb: upload limit per file.
    """
    paths = serve_files(served_paths)
    page.queue(default_concurrency_limit=concurrency, max_size=256)
    return page.launch(server_name=host, server_port=port, share=share, allowed_paths=paths,
                       blocked_paths=[str(Path(p).resolve()) for p in blocked_paths],
                       max_file_size=int(max_file_size_mb * 1024 * 1024),
                       prevent_thread_lock=prevent_thread_lock, css=CSS, show_error=True, quiet=False)
