"""Convert a config value (a command-line string or a value read from YAML) to its field's type.

``train.base_lr=5e-6`` is a float even though YAML reads ``5e-6`` as a string, ``train.epochs=abc``
is an error that names the setting, ``model.k2=null`` is ``None`` for an ``Optional[int]``, and
``train.milestones=[20,40]`` (or ``20,40``) is a list of ints. Every failure is a ``ValueError``
whose one-line message says which setting, what was given and what is expected.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Union

import yaml

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_NONE = {"null", "none", "~", ""}


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields (``from __future__ import annotations`` safe)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def convert_value(raw: Any, hint: Any, name: str) -> Any:
    """``raw`` converted to type ``hint``.

    Args:
        raw: a string from the command line, or a value already parsed from a YAML file.
        hint: the field's type (int, float, bool, str, Optional[...], list[...], tuple[...]).
        name: the setting, e.g. ``"train.epochs"``, for the error message.

    Raises:
        ValueError: ``raw`` cannot be read as ``hint``; the message names the setting.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if type(None) in args and (raw is None or (isinstance(raw, str) and raw.strip().lower() in _NONE)):
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{name}: unsupported field type {hint}")
        return convert_value(raw, inner[0], name)
    if hint is Any:
        return yaml.safe_load(raw) if isinstance(raw, str) else raw
    if hint is bool:
        return _to_bool(raw, name)
    if hint is int:
        return _to_int(raw, name)
    if hint is float:
        return _to_float(raw, name)
    if hint is str:
        if isinstance(raw, str) or (isinstance(raw, (int, float)) and not isinstance(raw, bool)):
            return str(raw)
        raise ValueError(f"{name}={raw!r}: expected a text value.")
    if origin in (list, tuple):
        return _to_sequence(raw, origin, args, name)
    raise TypeError(f"{name}: unsupported field type {hint}")


def _to_bool(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, (str, int)) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false.")


def _to_int(raw: Any, name: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, (str, float)) and not isinstance(raw, bool):
        try:
            return int(raw) if isinstance(raw, str) else _integral(raw)
        except ValueError:
            pass
        try:
            return _integral(float(raw))  # "1e3", "64.0"
        except ValueError:
            pass
    raise ValueError(f"{name}={raw!r}: expected a whole number such as 10.")


def _integral(value: float) -> int:
    if not math.isfinite(value) or not value.is_integer():
        raise ValueError(value)
    return int(value)


def _to_float(raw: Any, name: str) -> float:
    value = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or not math.isfinite(value):
        raise ValueError(f"{name}={raw!r}: expected a finite number such as 3.5e-4.")
    return value


def _to_sequence(raw: Any, origin: type, args: tuple, name: str) -> Any:
    items = yaml.safe_load(raw) if isinstance(raw, str) else raw
    if isinstance(items, str):  # "20,40" without brackets
        items = [part.strip() for part in items.split(",")]
    elif isinstance(items, (int, float)) and not isinstance(items, bool):
        items = [items]
    fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
    count = len(items) if isinstance(items, (list, tuple)) else 0
    element_types = list(args) if fixed else [args[0] if args else Any] * count
    example = "[256, 128]" if fixed else "[20, 40]"
    if not isinstance(items, (list, tuple)) or (fixed and len(items) != len(args)):
        want = f"{len(args)} values" if fixed else "a list"
        raise ValueError(f"{name}={raw!r}: expected {want} such as {example}.")
    try:
        values = [convert_value(item, t, name) for item, t in zip(items, element_types)]
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected values such as {example}.") from None
    return tuple(values) if origin is tuple else values
