"""Moodle's form encoding: nested lists and dicts in PHP bracket notation.

``{"courses": [{"fullname": "Algebra", "visible": True}]}`` becomes the fields
``courses[0][fullname]=Algebra`` and ``courses[0][visible]=1``. Every leaf is
one form field, and PHP drops the fields beyond ``max_input_vars`` without an
error, so the client also needs to count them (:func:`count_fields`).
"""

import re
from urllib.parse import quote_plus


def _scalar(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        # Moodle's int parameters reject "3.0"; a float field accepts "3".
        return str(int(value))
    return str(value)


# quote_plus leaves these as they are; most names and values are only these.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*\Z")
_OPEN, _CLOSE = quote_plus("["), quote_plus("]")


def _quote(text):
    return text if _PLAIN.match(text) else quote_plus(text)


_KEYS = {}


def _key(key):
    """A parameter name, encoded (names repeat in every record: cached)."""
    quoted = _KEYS.get(key)
    if quoted is None:
        quoted = _quote(str(key))
        if len(_KEYS) < 4096:
            _KEYS[key] = quoted
    return quoted


def _flatten(value, name, pairs):
    """Append the ``name=value`` pairs of ``value`` in bracket notation,
    form-encoded (``courses%5B0%5D%5Bfullname%5D=Algebra``), to ``pairs``.

    ``None`` values are skipped: Moodle wants optional keys omitted, not empty.
    Empty lists and dicts produce no field (Moodle applies the default).
    A full push sends over a million fields: a plain recursion that quotes
    each key once and leaves plain text unquoted.
    """
    append = pairs.append
    if isinstance(value, dict):
        for key, sub in value.items():
            key = _key(key)
            sub_name = f"{name}{_OPEN}{key}{_CLOSE}" if name else key
            kind = type(sub)
            # Most leaves are ints and plain strings: no call, no recursion.
            if kind is int:
                append(f"{sub_name}={sub}")
            elif kind is str:
                append(f"{sub_name}={_quote(sub)}")
            else:
                _flatten(sub, sub_name, pairs)
    elif isinstance(value, list | tuple):
        for index, sub in enumerate(value):
            _flatten(sub, f"{name}{_OPEN}{index}{_CLOSE}", pairs)
    elif value is not None:
        append(f"{name}={_quote(_scalar(value))}")


def count_fields(value):
    """Return how many form fields ``value`` becomes once flattened."""
    if isinstance(value, dict):
        return sum(count_fields(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(count_fields(v) for v in value)
    return 0 if value is None else 1


def encode(wstoken, wsfunction, params):
    """Return the form-encoded body of one web-service request, and how many
    fields it holds.

    ``wstoken``, ``wsfunction`` and ``moodlewsrestformat`` come first, so that
    if PHP ever cuts the request it cuts our data, never the authentication.

    :return: ``(body, fields)``: the ``application/x-www-form-urlencoded``
        text, and the number of fields in it
    """
    pairs = [
        f"wstoken={_quote(wstoken)}",
        f"wsfunction={_quote(wsfunction)}",
        "moodlewsrestformat=json",
    ]
    _flatten(params or {}, "", pairs)
    return "&".join(pairs), len(pairs)
