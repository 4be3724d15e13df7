"""An HTML page of rank lists (like torchreid's visrank), readable offline.

One row per query: the query triple (RGB, NIR, TIR thumbnails stacked), then its top-K gallery
triples with rank and cosine score. When both identities are known, a match gets a green border
(same identity) or a red one (another identity); otherwise a grey one. Thumbnails are JPEGs embedded
as base64 ``data:`` URIs and the style is inline, so the page is one self-contained file.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from signal_core.data import UNKNOWN, load_triple
from signal_core.modalities import LABELS
from signal_core.utils.atomic import atomic_write

BORDER = {"hit": "#1a9850", "miss": "#d73027", "unknown": "#bdbdbd"}
STYLE = """
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
.row {{ display: flex; gap: 6px; align-items: flex-start; margin-bottom: 14px; overflow-x: auto; }}
.item {{ border: 4px solid {unknown}; padding: 2px; text-align: center; font-size: 11px; }}
.item.query {{ border-color: #2b83ba; margin-right: 12px; }}
.item.hit {{ border-color: {hit}; }} .item.miss {{ border-color: {miss}; }}
.item img {{ display: block; margin: 1px auto; }}
.triple {{ display: flex; gap: 1px; }}
.bad {{ width: 40px; height: 80px; background: #eee; color: #900; font-size: 9px; }}
.caption {{ max-width: 150px; overflow-wrap: anywhere; }}
""".format(**BORDER)


@dataclass
class PageTriple:
    """A triple on the page: its name, (RGB, NIR, TIR) paths, identity and 0-based camera (UNKNOWN: not known)."""

    name: str
    paths: Sequence[str]
    pid: int = UNKNOWN
    camid: int = UNKNOWN
    score: float | None = None  # cosine similarity to the query (matches only)
    rank: int | None = None  # 1-based (matches only)


@dataclass
class RankList:
    """A query and its matches, best first."""

    query: PageTriple
    matches: list[PageTriple] = field(default_factory=list)


@dataclass
class RankPageSummary:
    """What :func:`write_rank_page` wrote."""

    path: Path
    queries_shown: int
    queries_total: int
    hits: int  # green borders
    misses: int  # red borders


def verdict(query: PageTriple, match: PageTriple) -> str:
    """"hit" (same known identity), "miss" (different known identities) or "unknown"."""
    if UNKNOWN in (query.pid, match.pid):
        return "unknown"
    return "hit" if query.pid == match.pid else "miss"


class ThumbnailCache:
    """Triple thumbnails as ``<img>`` tags with data URIs, each triple decoded once."""

    def __init__(self, height: int = 96, quality: int = 80) -> None:
        self.height, self.quality = int(height), int(quality)
        self._cache: dict[tuple[str, ...], str] = {}

    def _img_tag(self, image: Image.Image, label: str) -> str:
        width = max(1, min(3 * self.height, round(image.width * self.height / max(1, image.height))))
        small = image.convert("RGB").resize((width, self.height), Image.BILINEAR)
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=self.quality)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<img alt="{label}" title="{label}" src="data:image/jpeg;base64,{data}">'

    def triple(self, paths: Sequence[str]) -> str:
        """The three thumbnails side by side; a grey box saying "unreadable" if a file cannot be read."""
        key = tuple(paths)
        if key not in self._cache:
            try:
                images = load_triple(list(paths))
                tags = "".join(self._img_tag(img, m) for img, m in zip(images, LABELS.values()))
            except (ValueError, OSError) as exc:
                tags = f'<div class="bad" title="{html.escape(str(exc))}">unreadable</div>'
            self._cache[key] = f'<div class="triple">{tags}</div>'
        return self._cache[key]


def _caption(item: PageTriple) -> str:
    ident = "?" if item.pid == UNKNOWN else str(item.pid)
    cam = "?" if item.camid == UNKNOWN else str(item.camid + 1)
    head = "" if item.rank is None else f"#{item.rank} · {item.score:.3f}<br>"
    return f'<div class="caption">{head}id {ident} · cam {cam}<br>{html.escape(item.name)}</div>'


def _row_html(row: RankList, thumbs: ThumbnailCache) -> tuple[str, int, int]:
    parts = [f'<div class="item query">query{thumbs.triple(row.query.paths)}{_caption(row.query)}</div>']
    hits = misses = 0
    for match in row.matches:
        kind = verdict(row.query, match)
        hits, misses = hits + (kind == "hit"), misses + (kind == "miss")
        parts.append(f'<div class="item {kind}">{thumbs.triple(match.paths)}{_caption(match)}</div>')
    return f'<div class="row">{"".join(parts)}</div>', hits, misses


def write_rank_page(path: str | Path, rank_lists: Sequence[RankList], title: str = "Signal rank lists",
                    max_queries: int = 50, thumb_height: int = 96, notes: Sequence[str] = ()) -> RankPageSummary:
    """Write the page (atomically) for the first ``max_queries`` rank lists.

    Args:
        path: the ``.html`` file.
        rank_lists: queries and their matches, best first.
        max_queries: how many queries the page shows (keeps its size sane: about 3 x (K + 1)
            thumbnails of a few KB per query).
        thumb_height: thumbnail height in pixels.
        notes: extra lines shown under the title (e.g. gallery and model).
    """
    thumbs = ThumbnailCache(thumb_height)
    shown = list(rank_lists)[:max(0, max_queries)]
    rows, hits, misses = [], 0, 0
    for row in shown:
        text, h, m = _row_html(row, thumbs)
        rows.append(text)
        hits, misses = hits + h, misses + m
    more = "" if len(shown) == len(rank_lists) else f" (first {len(shown)} of {len(rank_lists)} queries)"
    lines = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    legend = ('<p>Border: <b style="color:{hit}">green</b> same identity as the query, <b style="color:{miss}">'
              'red</b> another identity, grey unknown.</p>'.format(**BORDER))
    page = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}{html.escape(more)}</h1>{lines}{legend}"
            f'{"".join(rows)}</body></html>\n')
    out = atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return RankPageSummary(out, len(shown), len(rank_lists), hits, misses)

