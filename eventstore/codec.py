"""The rules for keys and values, and how values become the JSON text the log stores.

Values are strict JSON: str, int, float, bool, list/tuple and dict with str keys, nested (but not
beyond Python's recursion limit); None only inside a list or dict; no NaN or infinity. Anything else
is refused before it reaches the database.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import TypeAlias, cast

import orjson

JSON: TypeAlias = "str | int | float | bool | list[JSON] | dict[str, JSON] | None"

MAX_KEY_LENGTH = 512
DEFAULT_MAX_VALUE_BYTES = 65535

logger = logging.getLogger("eventstore")

_SCALARS = (str, int, float, bool)


def check_key(key: object) -> str:
    """Return `key` if it can be stored on every database, else raise TypeError or ValueError."""
    if not isinstance(key, str):
        raise TypeError(f"State keys must be str, got {type(key).__name__}")
    if not key:
        raise ValueError("State keys must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"State keys are at most {MAX_KEY_LENGTH} characters, this one has {len(key)}")
    if "\x00" in key:
        raise ValueError("State keys must not contain a NUL character (PostgreSQL cannot store it)")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("State keys must not contain a lone surrogate (it is not valid UTF-8)") from None
    return key


def _check_value(value: object, path: str) -> None:
    kind = type(value)
    if kind in _SCALARS:
        if kind is float and not math.isfinite(cast(float, value)):
            raise ValueError(f"{value} at {path} is not JSON; NaN and infinity cannot be stored")
        return
    if value is None:
        if path == "value":
            raise ValueError("Cannot set value as None; use delete(key) to remove a key")
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(cast("list[object]", value)):
            _check_value(item, f"{path}[{index}]")
        return
    if kind is dict:
        for item_key, item in cast("dict[object, object]", value).items():
            if type(item_key) is not str:
                raise TypeError(
                    f"dict keys must be str, got {type(item_key).__name__} {item_key!r} in {path}; "
                    "convert the key to a string"
                )
            _check_value(item, f"{path}[{item_key!r}]")
        return
    raise TypeError(
        f"{kind.__name__} at {path} is not a JSON type; store str, int, float, bool, list or dict "
        "(convert it first, e.g. a datetime to an ISO string)"
    )


def encode(value: object) -> str:
    """Validate `value` and return its JSON text. Raises TypeError or ValueError, naming the problem."""
    try:
        _check_value(value, "value")
    except RecursionError:
        # Nesting beyond Python's recursion limit (about a thousand levels) could not be read back either.
        raise ValueError(
            "The value is nested too deeply (lists and dicts about a thousand levels deep); flatten it"
        ) from None
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits and strings with lone surrogates; the standard
        # library writes both exactly (as digits and as \\u escapes).
        return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def decode(text: str) -> JSON:
    """Parse stored JSON text. The standard parser keeps integers of any size exact, as stored."""
    return json.loads(text)  # type: ignore[no-any-return]


def max_value_bytes() -> int:
    """`EVENTSTORE_MAX_VALUE_BYTES` (default 65535, 0 = no limit), as the environment says now."""
    raw = os.environ.get("EVENTSTORE_MAX_VALUE_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_VALUE_BYTES
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(
            f"EVENTSTORE_MAX_VALUE_BYTES must be a whole number of bytes (0 = no limit), not {raw!r}: "
            "fix or unset it"
        )
    return int(raw)


def warn_if_large(key: str, text: str, limit: int) -> None:
    """The Python API writes values over `limit` bytes (0: no limit) anyway, as Airflow's workers do,
    but says so."""
    if not limit or len(text) * 4 <= limit:  # at most 4 UTF-8 bytes per character: surely not over
        return
    size = len(text.encode())
    if size > limit:
        logger.warning(
            "State value for key %r is %d bytes, over EVENTSTORE_MAX_VALUE_BYTES=%d; it was written, "
            "but the REST API would refuse it. Store a reference to large payloads instead.",
            key,
            size,
            limit,
        )
