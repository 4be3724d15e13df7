"""The words, markdown and JSON the page and the API show for a search (the engine returns data, not text)."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

from signal_core.data import UNKNOWN, label_or_none
from signal_core.metrics.parts import PART_LETTERS
from signal_core.modalities import LABELS
from signal_core.utils.messages import markdown_text

from .search import RankedMatch, SearchAnswer

PART_LABELS = {"rgb": "RGB class token", "nir": "NIR class token", "tir": "TIR class token",
               "fused": "fused SIM tokens"}
PARTS_NOTE = ("R / N / T / F #k: this result's rank among the whole gallery by the RGB, NIR or TIR class token or "
              "the fused SIM tokens alone (#1: that part alone ranks it first): the part that made this match")
SHARES_NOTE = ("R / N / T / F: the share of the score from the RGB, NIR and TIR class tokens and the fused SIM "
               "tokens (q_p·g_p / q·g of the L2-normalised features; they sum to 1)")
BAR_WIDTH = 20  # characters of a share of 1
MAX_DECIMALS = 6


def score_decimals(scores: Sequence[float]) -> int:
    """Decimals that tell the listed scores apart: 3, or up to 6 when they lie within 0.01 of each other (a
    model whose features share one large direction scores every result 0.999...; 1.000 would hide the ranks)."""
    spread = max(scores) - min(scores) if len(scores) > 1 else 0.0
    if not spread > 0:
        return 3
    return min(MAX_DECIMALS, max(3, math.ceil(-math.log10(spread)) + 1))


def caption(match: RankedMatch, decimals: int = 3) -> str:
    """E.g. "#1 ✓ id 12 · cam 2 · 0.873 · R#1 N#9 T#2 F#1" (camera 1-based, as in the file names; each
    part's own rank in the gallery), through an index the parts' shares "R.31 N.22 T.18 F.29"; after a
    modality switch "#3 (was 1, ↓2) ✓ id 12 · ..."; ``decimals`` of the score (:func:`score_decimals`)."""
    mark = " ✓" if match.is_match else ""
    pid = "?" if match.pid == UNKNOWN else match.pid
    cam = "?" if match.camid == UNKNOWN else match.camid + 1
    text = f"#{match.rank}{rank_move(match)}{mark} id {pid} · cam {cam} · {match.similarity:.{decimals}f}"
    if match.standing:
        text += " · " + " ".join(f"{PART_LETTERS[name]}#{rank}" for name, (rank, _) in match.standing.items())
    elif match.parts:
        text += " · " + " ".join(f"{PART_LETTERS[name]}{_short(p.share)}" for name, p in match.parts.items())
    return text


def rank_move(match: RankedMatch, depth: int | None = None) -> str:
    """" (was 1, ↓2)", " (was 4, ↑1)", " (was 2, =)" or " (was > 100)" after a switch; "" otherwise."""
    if match.previous_rank is None:
        return "" if depth is None else f" (was > {depth})"
    delta = match.rank - match.previous_rank
    arrow = "=" if delta == 0 else f"↓{delta}" if delta > 0 else f"↑{-delta}"
    return f" (was {match.previous_rank}, {arrow})"


def modality_list(result: SearchAnswer, which: str = "missing") -> str:
    """E.g. "NIR and TIR" (``which``: "missing" or "switched_off")."""
    return " and ".join(LABELS[m] for m in getattr(result, which))


def summary(result: SearchAnswer, gallery_size: int, gallery_name: str = "default gallery") -> str:
    """A short markdown status line, naming the gallery searched ("default gallery", "your gallery 'x.zip'")."""
    top = len(result.matches)
    parts = [f"**Top {top}** of {gallery_size} gallery triples ({markdown_text(gallery_name)}) in "
             f"{result.seconds * 1000:.0f} ms"]
    parts.append("camera unknown (mean camera embedding)" if result.camera == UNKNOWN
                 else f"camera {result.camera + 1}")
    if result.query_pid != UNKNOWN:
        parts.append(f"query id {result.query_pid}: {result.num_correct} correct (✓) in the top {top}")
    text = " · ".join(parts)
    if result.missing:
        its = "their inputs were" if len(result.missing) > 1 else "its input was"
        text += (f"\n\n⚠️ Missing modality: **{modality_list(result)}** not given; {its} zeroed "
                 "(missing-modality protocol) and the search used the other modalities.")
    if result.switched_off:
        moved = sum(m.previous_rank != m.rank for m in result.matches)
        text += (f"\n\nSwitched off: **{modality_list(result, 'switched_off')}** (zeroed). Under each result: its "
                 f"rank now and (was N) with all given modalities; {moved} of the top {top} moved.")
    if result.missing or result.switched_off:
        text += "\n\n" + zeroed_note(result)
    note = PARTS_NOTE if any(m.standing for m in result.matches) else SHARES_NOTE
    return text + f"\n\n<small>{note}.</small>"


def zeroed_note(result: SearchAnswer) -> str:
    """Which side of the comparison lost the query's missing and switched-off modalities."""
    query = " and ".join(LABELS[m] for m in (*result.missing, *result.switched_off))
    if result.gallery_zeroed:
        return (f"{query} zeroed in the query **and in the gallery** (the missing-modality protocol: the gallery's "
                "features recomputed without it), so like is compared with like.")
    return (f"{query} zeroed in the query only: the gallery's features keep all three modalities (a prebuilt "
            "index is not recomputed), so the ranking compares a partial query with whole triples.")


def parts_table(match: RankedMatch, depth: int = 0, decimals: int = 3) -> str:
    """A markdown table of one match's parts: cosine (``decimals`` of them), its rank in the gallery by that part
    alone and the z-score of the cosine against the gallery's (when known), share of the score and a bar of it."""
    ranked = bool(match.standing)
    head = "| part | cosine | rank by this part alone | z vs gallery " if ranked else "| part | cosine "
    lines = [head + "| share of the score | |", "|---|---:|" + ("---:|---:|" if ranked else "") + "---:|---|"]
    for name, p in match.parts.items():
        bar = "█" * max(0, round(p.share * BAR_WIDTH))
        rank, z = match.standing.get(name, (0, 0.0))
        standing = f"#{rank} | {z:+.1f} | " if ranked else ""
        lines.append(f"| {PART_LABELS[name]} | {p.cosine:.{decimals}f} | {standing}{p.share * 100:.0f} % | {bar} |")
    total = sum(p.share for p in match.parts.values())
    lines.append(f"| **all (score)** | **{match.similarity:.{decimals}f}** | {f'#{match.rank} | | ' if ranked else ''}"
                 f"{total * 100:.0f} % | |")
    text = "\n".join(lines)
    if depth:
        text += f"\n\nRank {match.rank}{rank_move(match, depth)} with all given modalities."
    return text


def result_json(result: SearchAnswer, gallery_name: str = "default gallery", gallery_size: int | None = None) -> dict:
    """The ``/search_json`` answer: the gallery searched, matches with their parts (each part's cosine,
    its rank in the gallery by that part alone and z-score against the gallery, null through an index,
    and its share of the score); identities and cameras null when unknown, cameras 1-based as on the page;
    ``zeroed``: the modalities zeroed in the query (missing or switched off) and in the gallery (the same ones
    under the missing-modality protocol, none through a saved index or a feature folder of 50,000 triples or more)."""
    matches = [{"rank": m.rank, "name": m.name, "score": round(m.similarity, 6), "identity": label_or_none(m.pid),
                "camera": _camera_number(m.camid),
                "parts": {name: {"cosine": round(p.cosine, 6), "share": round(p.share, 6),
                                 "rank": m.standing[name][0] if m.standing else None,
                                 "z": round(m.standing[name][1], 4) if m.standing else None}
                          for name, p in m.parts.items()}}
               for m in result.matches]
    return {"gallery": {"name": gallery_name, "triples": gallery_size}, "matches": matches,
            "missing": list(result.missing), "switched_off": list(result.switched_off),
            "zeroed": {"query": [*result.missing, *result.switched_off], "gallery": list(result.gallery_zeroed)},
            "query_identity": label_or_none(result.query_pid),
            "camera": _camera_number(result.camera), "seconds": round(result.seconds, 4)}


def _camera_number(camid: int) -> int | None:
    """The 1-based camera of the JSON answer, as on the page; null when unknown."""
    return None if camid == UNKNOWN else camid + 1


def _short(share: float) -> str:
    """0.31 -> ".31", -0.05 -> "-.05", 1.2 -> "1.20"."""
    return re.sub(r"^(-?)0\.", r"\1.", f"{share:.2f}")
