"""The page's handlers called directly (no server): a refused search says why in the status and clears the
results (a direct request cannot show an error on the page), new results carry no highlight, and a click
on a result list of another gallery, or outside the list, is refused with a message."""
from __future__ import annotations

import gradio as gr
import pytest

from demo.ui import build_ui
from signal_core.utils.messages import markdown_text


@pytest.fixture(scope="module")
def handlers(engine):
    """The page's event functions by name (rank, select, ...), over the test engine."""
    page = build_ui(engine)
    return {block_fn.fn.__name__: block_fn.fn for block_fn in page.fns.values() if block_fn.fn is not None}


def _click(index) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None, "selected": True})


def test_a_refused_search_says_why_in_the_status(handlers):
    answer = handlers["rank"](None, None, None, 3, "unknown", ["RGB", "NIR", "TIR"])
    results, status, matches = answer[:3]
    assert status == "⚠️ Give at least one image (RGB, NIR or TIR) to search with."
    assert results.value == [] and results.selected_index is None and matches == {"gallery": None, "matches": []}
    assert answer[3:] == (None, None, None, "", None, None, None, None, None)  # overlays and drawings cleared


def test_results_carry_their_gallery_and_no_highlight(engine, handlers):
    entry = engine.gallery.entries[3]
    results, status, matches, *_ = handlers["rank"](*entry.paths, 4, "unknown", ["RGB", "NIR", "TIR"])
    assert results.selected_index is None and len(results.value) == 4
    assert "of 12 gallery triples (default gallery)" in status
    assert matches["gallery"] == engine.gallery_id and len(matches["matches"]) == 4
    *_, text, _ = handlers["select"](matches, "kept tokens", _click(1))
    assert text.startswith(f"**Selected {markdown_text(matches['matches'][1]['caption'])}**")
    stale = {**matches, "gallery": "another-gallery"}
    with pytest.raises(gr.Error, match="This result list is from another gallery .*: press Search again."):
        handlers["select"](stale, "kept tokens", _click(1))
    for index in (4, -1, [1], "0"):
        with pytest.raises(gr.Error, match=r"There is no result .* in the current list of 4: press Search again."):
            handlers["select"](matches, "kept tokens", _click(index))
    with pytest.raises(gr.Error, match="from another gallery"):
        handlers["select"]([{"index": 0}], "kept tokens", _click(0))  # the old page's list format
