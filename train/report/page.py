"""The report's ``index.html``: one self-contained page (inline CSS, no script) that shows the PNGs
beside it by relative links, so the folder can be copied, zipped or opened offline."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from signal_core.viz import legend_html

from .figures import Figure

METRIC_NAMES = ("mAP", "mINP", "R1", "R5", "R10")
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 1.5em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.92em; margin-top: 0.3em; }
.meta td { text-align: left; }
"""


def metrics_table(rows: Mapping[str, Mapping[str, float]], first_header: str) -> str:
    """An HTML table: one row per entry of ``rows`` with mAP, mINP, R1, R5, R10 (percent, 2 decimals)."""
    head = "".join(f"<th>{n}</th>" for n in METRIC_NAMES)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{values[n]:.2f}</td>" for n in METRIC_NAMES) + "</tr>"
        for name, values in rows.items())
    return f"<table><thead><tr><th>{html.escape(first_header)}</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(fig: Figure, files: Sequence[str] | None = None) -> str:
    images = "".join(f'<img src="{html.escape(f)}" alt="{html.escape(fig.title)}" loading="lazy"><br>'
                     for f in (files or [fig.file]))
    return (f"<h2>{html.escape(fig.title)}</h2><figure>{images}"
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")


def render_page(title: str, meta: Mapping[str, str], metrics: Mapping[str, float],
                missing: Mapping[str, Mapping[str, float]], figures: Sequence[tuple[Figure, Sequence[str]]]) -> str:
    """The whole page.

    Args:
        meta: label -> value lines of the header table (model, data, timing...).
        metrics: the full setting's metrics (percent).
        missing: setting key -> metrics, the missing-modality table.
        figures: each figure with the PNG files it shows (several for the rank lists).
    """
    meta_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    missing_rows = {("none (full triple)" if k == "none" else f"M({k.upper()})"): v for k, v in missing.items()}
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<table class='meta'>{meta_rows}</table>",
        "<h2>Metrics (percent)</h2>", metrics_table({"test split": metrics}, "setting"),
        "<h2>Missing modalities</h2><p>The named modalities' inputs are zeroed for query and gallery "
        "(the protocol of TOP-ReID and DeMo); metrics in percent.</p>",
        metrics_table(missing_rows, "zeroed"),
        f"<p>Overlay colours: {legend_html()}</p>",
    ]
    parts += [_figure_html(fig, files) for fig, files in figures]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
