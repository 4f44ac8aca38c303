"""Moodle's column limits, and how a payload is fitted into them before a call.

Moodle's web services declare most text fields without a length (``PARAM_TEXT``,
``PARAM_RAW``…), so a value longer than its column reaches the database, which
refuses the write (``dmlwriteexception``). The planner fits every payload into
the columns first, field by field, in one of three ways:

``cut``
    free text that needs not be unique (a course's full name, a category's
    name, a person's name or city): the first ``limit - 1`` characters and
    "…".
``hashed``
    a value Moodle requires to be unique (a course's short name site-wide, a
    group's name within its course): the first ``limit - 9`` characters, "~"
    and 8 hex digits of the SHA-256 of the whole value, so that two long values
    with the same beginning never collide.
``block``
    a value whose shortened form would point at someone or something else, or
    mean nothing (an idnumber, a username, an email address, a phone number, a
    language or country code, the authentication method): the record is not
    sent, and the reason tells the registrar what to change.

Shortening is deterministic: the same value always gives the same shortened
value, so the payload's hash stays the same from one push to the next.

The limits are Moodle 4.5's (``lib/db/install.xml``). Lengths are counted in
characters (Python's ``len`` of a ``str``), as MySQL/MariaDB (``utf8mb4``) and
PostgreSQL (``varchar``) count them, never in bytes.
"""

import dataclasses
import hashlib
import re

CUT, HASHED, BLOCK = "cut", "hashed", "block"
ELLIPSIS = "…"
HASH_DIGITS = 8
IN_OPENEDUCAT = "shorten it in OpenEduCat"


@dataclasses.dataclass(frozen=True)
class Field:
    """One column: its length, how a longer value is handled, and for a
    blocked value what the registrar should do.

    :ivar int limit: most characters Moodle's column holds
    :ivar str how: ``cut``, ``hashed`` or ``block``
    :ivar str label: the field as the registrar knows it
    :ivar str fix: what to do about a value that is blocked
    :ivar str pattern: a regular expression the whole value must match
        (checked on blocked fields only)
    """

    limit: int
    how: str
    label: str
    fix: str = IN_OPENEDUCAT
    pattern: str | None = None


_IDNUMBER = "the idnumber the connector gives it"
_IDNUMBER_FIX = "report it: the connector's idnumbers are short"

# Moodle object kind → {payload field: Field}
LIMITS = {
    "category": {
        "name": Field(255, CUT, "name"),
        "idnumber": Field(100, BLOCK, _IDNUMBER, _IDNUMBER_FIX),
    },
    "course": {
        "fullname": Field(254, CUT, "full name"),
        "shortname": Field(255, HASHED, "short name"),
        "idnumber": Field(100, BLOCK, _IDNUMBER, _IDNUMBER_FIX),
    },
    "group": {
        "name": Field(254, HASHED, "name"),
        "idnumber": Field(100, BLOCK, _IDNUMBER, _IDNUMBER_FIX),
    },
    "user": {
        "username": Field(
            100,
            BLOCK,
            "username",
            "shorten the login (or, without a login, the email address) in OpenEduCat",
        ),
        "firstname": Field(100, CUT, "first name"),
        "lastname": Field(100, CUT, "last name"),
        "email": Field(100, BLOCK, "email address"),
        # Moodle 4.5's user.idnumber is 255 long (course, category and group
        # idnumbers are 100).
        "idnumber": Field(255, BLOCK, _IDNUMBER, _IDNUMBER_FIX),
        "auth": Field(
            20,
            BLOCK,
            "authentication method",
            "choose another on the Moodle instance",
        ),
        "lang": Field(30, BLOCK, "language code", "correct it in OpenEduCat"),
        "country": Field(
            2,
            BLOCK,
            "country",
            "use the 2-letter code (ISO 3166) in OpenEduCat",
            pattern=r"[A-Za-z]{2}",
        ),
        "phone1": Field(20, BLOCK, "phone number"),
        "city": Field(120, CUT, "city"),
        "institution": Field(255, CUT, "institution"),
        "department": Field(255, CUT, "department"),
        "address": Field(255, CUT, "address"),
    },
}


def cut(value, limit):
    """The first ``limit - 1`` characters (trailing spaces dropped) and "…"."""
    return value[: limit - 1].rstrip() + ELLIPSIS


def hashed(value, limit):
    """A prefix, "~" and 8 hex digits of the whole value's SHA-256: exactly
    ``limit`` characters, distinct for distinct values."""
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:HASH_DIGITS]
    return f"{value[: limit - HASH_DIGITS - 1]}~{digest}"


def fit(kind, payload):
    """Fit a payload into Moodle's columns.

    :param str kind: the Moodle object kind (``course``, ``user``…)
    :param dict payload: the payload the planner built
    :return: ``(payload, notes, problem)``: the payload to send (a new dict
        when a value was shortened, else the same one), what was shortened
        (for the registrar), and why the record cannot be sent (``None``
        when it can)
    :rtype: tuple[dict, list[str], str | None]
    """
    fields = LIMITS.get(kind)
    if not fields or not payload:
        return payload, [], None
    fitted, notes, problems = payload, [], []
    for name, field in fields.items():
        value = payload.get(name)
        if not isinstance(value, str) or not value:
            continue
        size = len(value)
        if field.how == BLOCK:
            if field.pattern and not re.fullmatch(field.pattern, value):
                problems.append(
                    f"{field.label} {value!r} is not what Moodle accepts: {field.fix}"
                )
            elif size > field.limit:
                problems.append(
                    f"{field.label} is {size} characters; Moodle allows "
                    f"{field.limit}: {field.fix}"
                )
            continue
        if size <= field.limit:
            continue
        if fitted is payload:
            fitted = dict(payload)
        shorten = cut if field.how == CUT else hashed
        fitted[name] = shorten(value, field.limit)
        notes.append(
            f"{name} shortened from {size} characters to {len(fitted[name])} "
            f"(Moodle allows {field.limit})"
        )
    if problems:
        return None, [], "; ".join(problems)
    return fitted, notes, None
