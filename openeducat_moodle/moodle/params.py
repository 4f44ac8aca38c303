"""Moodle's form encoding: nested lists and dicts in PHP bracket notation.

``{"courses": [{"fullname": "Algebra", "visible": True}]}`` becomes the fields
``courses[0][fullname]=Algebra`` and ``courses[0][visible]=1``. Every leaf is
one form field, and PHP drops the fields beyond ``max_input_vars`` without an
error, so the client also needs to count them (:func:`count_fields`).
"""


def _scalar(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        # Moodle's int parameters reject "3.0"; a float field accepts "3".
        return str(int(value))
    return str(value)


def flatten(params, prefix=""):
    """Yield ``(name, value)`` pairs for ``params`` in bracket notation.

    ``None`` values are skipped: Moodle wants optional keys omitted, not empty.
    Empty lists and dicts produce no field (Moodle applies the default).

    :param params: a dict, list or scalar
    :param str prefix: the name built so far
    """
    if isinstance(params, dict):
        for key, value in params.items():
            name = f"{prefix}[{key}]" if prefix else str(key)
            yield from flatten(value, name)
    elif isinstance(params, list | tuple):
        for index, value in enumerate(params):
            yield from flatten(value, f"{prefix}[{index}]")
    elif params is None:
        return
    else:
        yield prefix, _scalar(params)


def count_fields(value):
    """Return how many form fields ``value`` becomes once flattened."""
    if isinstance(value, dict):
        return sum(count_fields(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(count_fields(v) for v in value)
    return 0 if value is None else 1


def encode(wstoken, wsfunction, params):
    """Return the ordered form fields of one web-service request.

    ``wstoken``, ``wsfunction`` and ``moodlewsrestformat`` come first, so that
    if PHP ever cuts the request it cuts our data, never the authentication.

    :return: a list of ``(name, value)`` tuples, ready for ``requests``
    """
    fields = [
        ("wstoken", wstoken),
        ("wsfunction", wsfunction),
        ("moodlewsrestformat", "json"),
    ]
    fields.extend(flatten(params or {}))
    return fields
