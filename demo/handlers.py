"""The page's event functions: rank, draw, select a result, switch the view, and the two APIs.

:class:`PageHandlers` holds them over the default engine and the visitors' galleries;
:mod:`demo.ui` lays out the page and wires its events to them. A user's error becomes a ``gr.Error``
with its message; anything else is logged and the visitor told what failed (:func:`run_safely`).
"""
from __future__ import annotations

import html
import logging
from collections.abc import Sequence

import gradio as gr

from signal_core.modalities import LABELS, MODALITIES
from signal_core.utils.messages import bounded, markdown_text, shown

from . import text
from .explain import VIEWS
from .search import UNKNOWN_CAMERA, ImageRefused, QueryError, SearchEngine
from .sessions import GalleryDropped, SessionGalleries
from .upload_guard import remove_uploaded

log = logging.getLogger(__name__)


def user_error(message: str) -> gr.Error:
    """A ``gr.Error`` showing ``message`` as text (it is rendered as HTML otherwise), no traceback logged."""
    return gr.Error(html.escape(bounded(message), quote=False), print_exception=False)


def run_safely(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a user's error (QueryError, a removed gallery) becomes its message, logged
    as one line; anything else is our bug: its traceback is logged and the visitor told "``what`` failed"
    with the kind of error only (its text may name server paths)."""
    try:
        return fn(*args, **kwargs)
    except (QueryError, GalleryDropped) as exc:
        log.info("%s refused: %s", what, shown(str(exc), 200))
        raise user_error(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - keep serving whatever happens
        log.exception("%s failed", what)
        raise user_error(f"{what} failed (internal error {exc.__class__.__name__}; it is logged on the "
                         "server).") from None


def switched_on(labels: Sequence[str] | None) -> tuple[str, ...] | None:
    """The modality switch's ticked labels ("RGB", ...) as modality names; None (not given): all on."""
    if labels is None:
        return None
    if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
        raise QueryError(f"the modalities to search with must be a list of {', '.join(LABELS.values())}; got "
                         f"{shown(labels)}.")
    by_label = {LABELS[m]: m for m in MODALITIES}
    return tuple(by_label[label] for label in labels if label in by_label)


def session_engine(uploads: SessionGalleries | None, request: gr.Request | None, default: SearchEngine):
    """The engine of the caller's session: its uploaded gallery, else ``default``.

    Raises:
        GalleryDropped: the caller's gallery was removed (idle, or over the server's budget).
    """
    return default if uploads is None else uploads.engine_for(getattr(request, "session_hash", None))


def searched(engine: SearchEngine, *inputs, **options):
    """``engine.search(*inputs, **options)``; a query image the decoder refuses is deleted from gradio's upload
    folder (kept nowhere, as a refused upload), whichever way it came in."""
    try:
        return engine.search(*inputs, **options)
    except ImageRefused as exc:
        if isinstance(exc.source, str):
            remove_uploaded([exc.source])
        raise


class PageHandlers:
    """The page's event functions over ``engine`` (the default gallery) and, with ``uploads``, the
    visitors' own galleries. The rank outputs are, in order: results, status, listed matches, the three
    selected-result overlays, the selected text, the query's and the selected result's drawings, the
    three query overlays."""

    def __init__(self, engine: SearchEngine, uploads: SessionGalleries | None = None) -> None:
        self.default, self.uploads = engine, uploads

    def saved(self, drawings, view: str) -> list[str | None]:
        """The PNG files of one view of ``drawings`` (drawn now if not yet); three Nones without drawings."""
        if drawings is None:
            return [None] * 3
        return run_safely("Drawing the explanation",
                          lambda: [self.default.served.save_png(o) for o in drawings.view(view)])

    def ranked(self, rgb, nir, tir, top_k, camera, modalities, request, explain: bool = True):
        """(engine, result) of a search on the caller's gallery; user errors raise ``gr.Error``."""
        engine = run_safely("Search", session_engine, self.uploads, request, self.default)
        result = run_safely("Search", searched, engine, rgb, nir, tir, top_k, camera, explain=explain,
                            switched_on=switched_on(modalities))
        return engine, result

    def rank(self, rgb: str | None, nir: str | None, tir: str | None, top_k: float = 10,
             camera: str = UNKNOWN_CAMERA, modalities: list[str] | None = None, request: gr.Request = None):
        """The page's search, step 1: the ranked results (the query's drawings follow in :meth:`draw`).

        A refused query clears the results and says why in the status: this is a direct request
        (queue=False), whose errors gradio cannot show on the page (only an empty toast).
        """
        try:
            engine, result = self.ranked(rgb, nir, tir, top_k, camera, modalities, request)
        except gr.Error as exc:
            return self.cleared(f"⚠️ {markdown_text(html.unescape(exc.message))}")  # user_error escaped it for HTML
        # a missing modality is said in the status (a toast cannot reach the page from a direct request)
        decimals = text.score_decimals([m.similarity for m in result.matches])
        gallery_value = [(m.thumbnail, text.caption(m, decimals)) for m in result.matches]
        matches = {"gallery": engine.gallery_id,  # a click on a list of another gallery is refused
                   "matches": [{"index": m.index, "caption": text.caption(m, decimals),
                                "parts": text.parts_table(m, result.previous_depth, decimals)}
                               for m in result.matches]}
        summary = text.summary(result, len(engine.gallery), engine.gallery_name)
        return (gr.Gallery(value=gallery_value, selected_index=None), summary, matches, None, None, None,
                "Click a result above to see what the model looked at in it and its score by part.",
                result.drawings, None, None, None, None)

    def cleared(self, status: str) -> tuple:
        """The rank outputs with no results (and no highlight, no drawings), ``status`` shown."""
        return (gr.Gallery(value=[], selected_index=None), status, {"gallery": None, "matches": []},
                None, None, None, "", None, None, None, None, None)

    def draw(self, drawings, view: str):
        """The page's search, step 2: the query's explanation in the chosen view."""
        return tuple(self.saved(drawings, view))

    def rank_again(self, rgb: str | None, nir: str | None, tir: str | None, top_k: float, camera: str,
                   modalities: list[str] | None, request: gr.Request = None):
        """The modality switch re-runs a search once there are query images (nothing otherwise)."""
        if not (rgb or nir or tir):
            return tuple(gr.skip() for _ in self.cleared(""))  # one per rank output
        return self.rank(rgb, nir, tir, top_k, camera, modalities, request=request)

    def select(self, matches: dict, view: str, evt: gr.SelectData, request: gr.Request = None):
        """A click on a result: its drawings in the chosen view and its score by part."""
        engine = run_safely("Explaining this result", session_engine, self.uploads, request, self.default)
        listed = (matches or {}).get("matches", []) if isinstance(matches, dict) else []
        if not isinstance(matches, dict) or matches.get("gallery") != engine.gallery_id:
            raise user_error("This result list is from another gallery (the gallery changed since the search): "
                             "press Search again.")
        if not isinstance(evt.index, int) or not 0 <= evt.index < len(listed):
            raise user_error(f"There is no result {shown(evt.index)} in the current list of {len(listed)}: "
                             "press Search again.")
        match = listed[evt.index]
        drawings = run_safely("Explaining this result", engine.explain_entry, match["index"])
        entry = engine.gallery.entries[match["index"]]
        return (*self.saved(drawings, view), f"**Selected {markdown_text(match['caption'])}** · "
                f"{markdown_text(entry.name)}\n\n{match['parts']}", drawings)

    def show_view(self, view: str, query_drawings, selected_drawings):
        """The view switch: the query's and the selected result's drawings in ``view``."""
        return (*self.saved(query_drawings, view), *self.saved(selected_drawings, view))

    def search(self, rgb: str | None, nir: str | None, tir: str | None, top_k: float = 10,
               camera: str = UNKNOWN_CAMERA, request: gr.Request = None):
        """The ``/search`` API: the ranked gallery, the status text and the query's kept-token drawings."""
        engine, result = self.ranked(rgb, nir, tir, top_k, camera, None, request)
        decimals = text.score_decimals([m.similarity for m in result.matches])
        gallery_value = [(m.thumbnail, text.caption(m, decimals)) for m in result.matches]
        return (gallery_value, text.summary(result, len(engine.gallery), engine.gallery_name),
                *self.saved(result.drawings, VIEWS[0]))

    def search_json(self, rgb: str | None, nir: str | None, tir: str | None, top_k: float = 10,
                    camera: str = UNKNOWN_CAMERA, request: gr.Request = None) -> dict:
        """The ``/search_json`` API: the matches with their part scores, nothing drawn."""
        engine, result = self.ranked(rgb, nir, tir, top_k, camera, None, request, explain=False)
        return text.result_json(result, engine.gallery_name, len(engine.gallery))
