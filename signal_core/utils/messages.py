"""What a visitor is told: anything they gave, shortened; never a server path; safe to show as markdown.

Every message of the page and the API that repeats a visitor's input (a file or zip member name, a
camera string, a top k) passes it through :func:`shown`: one line, at most :data:`MAX_SHOWN`
characters (a 300-character zip member name or a 30 MB camera string is shown by its start, its end
and its length). An exception is told by its kind and reason (:func:`reason`), an ``OSError`` without
the server path its text names. :func:`bounded` is the last guard before a message leaves the server, and
:func:`markdown_text` escapes text for a markdown component (a file named
``<img src=x onerror=alert(1)>.png`` is shown as that name, not as an image).
"""
from __future__ import annotations

import html
import re
import reprlib

MAX_SHOWN = 80  # characters of a visitor's input repeated in a message
MAX_MESSAGE = 1000  # characters of any message sent to a visitor
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # control and bidi marks
# (a name with U+202E would read reversed)
_MARKDOWN = re.compile(r"([\\`*_\[\]#|~])")
_REPR = reprlib.Repr()  # a short repr of a non-string input (a list of a million items: its first four)
_REPR.maxstring = _REPR.maxother = MAX_SHOWN


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` (a string as is, anything else as its short repr) on one line, control and bidi characters
    as "?", at most about ``limit`` characters: "RGB/aaaa…aaa.png (300 characters)" when longer."""
    if not isinstance(value, str):
        return _REPR.repr(value)
    if len(value) <= limit:
        return _CONTROL.sub("?", value)
    tail = limit // 4
    return f"{_CONTROL.sub('?', value[:limit - tail])}…{_CONTROL.sub('?', value[-tail:])} ({len(value)} characters)"


def quoted(value: object, limit: int = MAX_SHOWN) -> str:
    """As ``repr(value)`` ("'abc'", "3.7"), shortened as by :func:`shown`."""
    return repr(shown(value, limit)) if isinstance(value, str) else shown(value, limit)


def os_reason(exc: OSError) -> str:
    """Why an ``OSError`` happened ("No space left on device"), without the file name it carries."""
    return exc.strerror or exc.__class__.__name__


def reason(exc: BaseException) -> str:
    """"KindOfError: what it says", shortened; an ``OSError`` that names a file by its reason only."""
    if isinstance(exc, OSError) and (exc.filename is not None or exc.strerror):
        return f"{exc.__class__.__name__}: {os_reason(exc)}"
    text = str(exc)
    return f"{exc.__class__.__name__}: {shown(text)}" if text else exc.__class__.__name__


def megabytes(n: float) -> str:
    """Bytes as "12 MB" (one decimal below 10 MB: "0.4 MB")."""
    mb = n / 2**20
    return f"{mb:.1f} MB" if mb < 10 else f"{mb:.0f} MB"


def bounded(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters (the last guard: each part is already shortened)."""
    return message if len(message) <= limit else message[:limit - 1] + "…"


def markdown_text(text: str) -> str:
    """``text`` escaped for a markdown component: HTML tags and markdown marks shown as written."""
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))
