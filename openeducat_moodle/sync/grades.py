"""Pull: Moodle's grades as plain rows, change detection and conversion.

Moodle is authoritative for learning results. Each source gives
:class:`GradeRow` objects keyed by an item key that carries its source, so
that keys never collide across sources whatever Moodle's ids:
``gb:<grade item id>`` (gradebook), ``as:<assign id>`` (assignments),
``qz:<quiz id>`` (quizzes). The exam codes of :func:`exam_code` carry the
source too.
"""

import dataclasses
import decimal
import hashlib
import json
import math
import re

from .idnumbers import base36

TOTAL_TYPES = frozenset({"course", "category"})
# The source of a row: its prefix in item keys, its letter in exam codes.
KEY_PREFIXES = {"gradebook": "gb", "assign": "as", "quiz": "qz"}
EXAM_LETTERS = {"gradebook": "G", "assign": "A", "quiz": "Q"}
# OpenEduCat's exam codes are 16 characters at most (longer ones are cut).
EXAM_CODE_SIZE = 16

# Before 17.0.1.2.0 every source shared one integer key: gradebook item ids
# as they were, quizzes at QUIZ_OFFSET + quiz id, assignments at
# ASSIGN_OFFSET + assign id (a gradebook item id of 1,000,000 or more
# collided). Only the migration of old keys reads these.
QUIZ_OFFSET = 1_000_000
ASSIGN_OFFSET = 2_000_000
_LEGACY_EXAM_CODE = re.compile(r"^M([0-9A-Z]+)\.([0-9A-Z]+)\.([0-9A-Z]+)$")


@dataclasses.dataclass(frozen=True)
class GradeRow:
    """One student's grade for one Moodle grade item."""

    courseid: int
    userid: int
    item_id: int
    item_name: str
    source: str
    raw: float
    grademax: float
    grademin: float = 0.0

    @property
    def item_key(self):
        """The item's key, its source included (``qz:3``)."""
        return item_key_of(self.source, self.item_id)


def item_key_of(source, item_id):
    """``<prefix>:<id>``: the key of a Moodle grade item of ``source``
    (``gradebook``, ``assign`` or ``quiz``)."""
    return f"{KEY_PREFIXES[source]}:{int(item_id)}"


def exam_code(instance_id, source, item_id, batch_id):
    """The code of the ``op.exam`` of one grade item and batch:
    ``M<instance>.<G|A|Q>.<item id>.<batch>`` (ids in base 36).

    Four parts: never equal to a code of the three-part form used before
    17.0.1.2.0 (``M<instance>.<key>.<batch>``).

    :raise ValueError: the code would not fit OpenEduCat's 16 characters
        (which would cut it, and so merge two items)
    """
    code = ".".join(
        (
            "M" + base36(instance_id),
            EXAM_LETTERS[source],
            base36(int(item_id)),
            base36(batch_id),
        )
    )
    if len(code) > EXAM_CODE_SIZE:
        raise ValueError(
            f"exam code {code} is longer than OpenEduCat's {EXAM_CODE_SIZE} characters"
        )
    return code


def legacy_item(key, source=None):
    """``(source, item id)`` of a key of the old integer form.

    :param int key: the old key (``QUIZ_OFFSET + quiz id``, …)
    :param str source: the source the grade's mapping row recorded; without
        it the offsets decide, which is wrong for gradebook item ids of
        1,000,000 or more (the reason the keys changed)
    """
    key = int(key)
    if source == "quiz" and QUIZ_OFFSET < key:
        return "quiz", key - QUIZ_OFFSET
    if source == "assign" and ASSIGN_OFFSET < key:
        return "assign", key - ASSIGN_OFFSET
    if source == "gradebook":
        return "gradebook", key
    if key > ASSIGN_OFFSET:
        return "assign", key - ASSIGN_OFFSET
    if key > QUIZ_OFFSET:
        return "quiz", key - QUIZ_OFFSET
    return "gradebook", key


def parse_legacy_exam_code(code):
    """``(instance id, old key, batch id)`` of an exam code of the old
    three-part form, else ``None``."""
    match = _LEGACY_EXAM_CODE.match(code or "")
    if not match:
        return None
    return tuple(int(part, 36) for part in match.groups())


def settings_digest(scale="percentage", threshold=50.0, bands=()):
    """A short digest of the conversion settings: what turns a Moodle grade
    into OpenEduCat's marks. Letter bands count only on the letter scale
    (the other scales ignore them).

    :param bands: ``[(letter, min_percent, max_percent), ...]``
    """
    canonical = {
        "scale": scale,
        "threshold": float(threshold),
        "bands": sorted(
            [str(letter), float(low), float(high)] for letter, low, high in bands
        )
        if scale == "letter"
        else [],
    }
    text = json.dumps(canonical, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def grade_hash(raw, grademax, grademin=0.0, settings=""):
    """The grade's change detector: SHA-256 of the grade, its range and the
    digest of the conversion settings (:func:`settings_digest`), so that
    changing the scale, the pass threshold or the letter bands re-converts
    stored marks."""
    text = f"{float(raw)!r}:{float(grademax)!r}:{float(grademin)!r}:{settings or ''}"
    return hashlib.sha256(text.encode()).hexdigest()


def legacy_grade_hash(raw, grademax):
    """The change detector before 17.0.1.2.0 (grade and maximum only)."""
    return hashlib.sha256(f"{float(raw)!r}:{float(grademax)!r}".encode()).hexdigest()


def _float(value):
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def gradebook_rows(usergrades, skip_modules=()):
    """Rows from ``gradereport_user_get_grade_items``.

    Course-total and category-total rows are skipped (they sum the others),
    so are ungraded items (``graderaw`` null) and the activity modules another
    source pulls more precisely (``skip_modules``).
    """
    rows = []
    for report in usergrades:
        for item in report.get("gradeitems") or []:
            if item.get("itemtype") in TOTAL_TYPES:
                continue
            if item.get("itemmodule") in skip_modules:
                continue
            raw = _float(item.get("graderaw"))
            grademax = _float(item.get("grademax"))
            if raw is None or not grademax:
                continue
            rows.append(
                GradeRow(
                    courseid=report["courseid"],
                    userid=report["userid"],
                    item_id=int(item["id"]),
                    item_name=item.get("itemname") or f"Grade item {item['id']}",
                    source="gradebook",
                    raw=raw,
                    grademax=grademax,
                    grademin=_float(item.get("grademin")) or 0.0,
                )
            )
    return rows


def assignment_rows(courseid, assignment, grades):
    """Rows from ``mod_assign_get_grades`` for one assignment.

    A missing or null grade, and Moodle's ``-1`` placeholder, are skipped: a
    missing submission is never written as 0.

    :param dict assignment: the assignment (``id``, ``name``, ``grade`` = max;
        a negative max is a scale, not supported)
    """
    grademax = _float(assignment.get("grade"))
    if not grademax or grademax <= 0:
        return []
    rows = []
    for grade in grades:
        raw = _float(grade.get("grade"))
        if raw is None or raw < 0:
            continue
        rows.append(
            GradeRow(
                courseid=courseid,
                userid=grade["userid"],
                item_id=int(assignment["id"]),
                item_name=assignment.get("name") or f"Assignment {assignment['id']}",
                source="assign",
                raw=raw,
                grademax=grademax,
            )
        )
    return rows


def quiz_row(courseid, quiz, userid, best):
    """The row of a quiz's best grade for one user, or ``None`` (no attempt)."""
    if not best or not best.get("hasgrade"):
        return None
    raw = _float(best.get("grade"))
    grademax = _float(quiz.get("grade"))
    if raw is None or not grademax:
        return None
    return GradeRow(
        courseid=courseid,
        userid=userid,
        item_id=int(quiz["id"]),
        item_name=quiz.get("name") or f"Quiz {quiz['id']}",
        source="quiz",
        raw=raw,
        grademax=grademax,
    )


@dataclasses.dataclass(frozen=True)
class Converted:
    """A grade as OpenEduCat stores it: integer marks out of integer total."""

    marks: int
    total: int
    percentage: float
    letter: str | None
    passed: bool
    min_marks: int


def _round(value):
    return int(decimal.Decimal(str(value)).quantize(0, decimal.ROUND_HALF_UP))


def letter_for(percentage, bands):
    """The letter of the band holding ``percentage``.

    :param bands: ``[(letter, min_percent, max_percent), ...]``
    """
    for letter, low, high in sorted(bands, key=lambda b: -b[1]):
        if low <= percentage <= high:
            return letter
    return None


def convert(raw, grademax, grademin=0.0, scale="percentage", threshold=50.0, bands=()):
    """Convert a Moodle grade for OpenEduCat's integer marks.

    :param str scale: ``percentage`` (marks out of 100), ``points`` (marks out
        of the item's maximum, rounded) or ``letter`` (out of 100, plus the
        letter of the band)
    :param float threshold: pass mark, in percent
    :rtype: Converted
    """
    span = grademax - grademin
    percentage = 0.0 if span <= 0 else (raw - grademin) / span * 100.0
    percentage = max(0.0, min(100.0, percentage))
    if scale == "points":
        total = max(1, _round(grademax))
        marks = max(0, min(total, _round(raw)))
    else:
        total = 100
        marks = max(0, min(total, _round(percentage)))
    needed = math.ceil(decimal.Decimal(total) * decimal.Decimal(str(threshold)) / 100)
    min_marks = max(1, min(total, needed))
    return Converted(
        marks=marks,
        total=total,
        percentage=round(percentage, 2),
        letter=letter_for(percentage, bands) if scale == "letter" else None,
        passed=percentage >= threshold,
        min_marks=int(min_marks),
    )
