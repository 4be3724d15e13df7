"""The words and markdown the page shows for a search (the engine returns data, not text)."""
from __future__ import annotations

from signal_core.modalities import LABELS

from .engine import RankedMatch, SearchResult


def caption(match: RankedMatch) -> str:
    """E.g. "#1 ✓ id 12 · cam 2 · 0.873" (camera 1-based, as in the file names)."""
    mark = " ✓" if match.is_match else ""
    pid = "?" if match.pid is None else match.pid
    cam = "?" if match.camid is None else match.camid + 1
    return f"#{match.rank}{mark} id {pid} · cam {cam} · {match.similarity:.3f}"


def missing_names(result: SearchResult) -> str:
    """E.g. "NIR and TIR"."""
    return " and ".join(LABELS[m] for m in result.missing)


def summary(result: SearchResult, gallery_size: int) -> str:
    """A short markdown status line."""
    top = len(result.matches)
    parts = [f"**Top {top}** of {gallery_size} gallery triples in {result.seconds * 1000:.0f} ms"]
    parts.append("camera unknown (mean camera embedding)" if result.camera is None else f"camera {result.camera + 1}")
    if result.query_pid is not None:
        parts.append(f"query id {result.query_pid}: {result.num_correct} correct (✓) in the top {top}")
    text = " · ".join(parts)
    if result.missing:
        its = "their inputs were" if len(result.missing) > 1 else "its input was"
        text += (f"\n\n⚠️ Missing modality: **{missing_names(result)}** not given; {its} zeroed "
                 "(missing-modality protocol) and the search used the other modalities.")
    return text
