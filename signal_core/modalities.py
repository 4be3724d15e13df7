"""The three modalities of a triple, named once: keys, display labels, letters and folder names.

Everything that spells a modality (model heads, data records, the missing-modality protocol,
triples folders, the demo and the report) takes it from here.
"""
from __future__ import annotations

from collections.abc import Iterable

MODALITIES = ("rgb", "nir", "tir")  # the order of every triple: visible, near infrared, thermal infrared
LABELS = {"rgb": "RGB", "nir": "NIR", "tir": "TIR"}  # for people: tables, figures, the demo
LETTERS = {"rgb": "r", "nir": "n", "tir": "t"}  # missing-modality settings are spelled with these ("nt")
FOLDERS = ("RGB", "NI", "TI")  # sub-folders of an RGBNT201 split and of a triples folder, in MODALITIES order
MISSING_SETTINGS = ("r", "n", "t", "rn", "rt", "nt")  # the six settings of the missing-modality test


def missing_code(missing: Iterable[str]) -> str:
    """The setting that zeroes ``missing`` modality names, e.g. ("nir", "tir") -> "nt" ("" for none)."""
    names = set(missing)
    unknown = names - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modality {sorted(unknown)}; choose from {MODALITIES}.")
    return "".join(LETTERS[m] for m in MODALITIES if m in names)


def missing_names(code: str | None) -> tuple[str, ...]:
    """The modality names a setting zeroes, e.g. "nt" -> ("nir", "tir"); None or "" -> ()."""
    if not code:
        return ()
    if code not in MISSING_SETTINGS:
        raise ValueError(f"missing must be one of {MISSING_SETTINGS} or None, got {code!r}.")
    by_letter = {letter: name for name, letter in LETTERS.items()}
    return tuple(by_letter[letter] for letter in code)
