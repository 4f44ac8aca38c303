"""Pull: Moodle's grades as plain rows, change detection and conversion.

Moodle is authoritative for learning results. Each source gives
:class:`GradeRow` objects keyed by an item key that never collides across
sources: gradebook grade item ids as they are, assignments at
``ASSIGN_OFFSET + assign id``, quizzes at ``QUIZ_OFFSET + quiz id``.
"""

import dataclasses
import decimal
import hashlib
import math

QUIZ_OFFSET = 1_000_000
ASSIGN_OFFSET = 2_000_000
TOTAL_TYPES = frozenset({"course", "category"})


@dataclasses.dataclass(frozen=True)
class GradeRow:
    """One student's grade for one Moodle grade item."""

    courseid: int
    userid: int
    item_key: int
    item_name: str
    source: str
    raw: float
    grademax: float
    grademin: float = 0.0


def grade_hash(raw, grademax):
    """SHA-256 of ``grade_raw:grade_max``: the grade's change detector."""
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
                    item_key=int(item["id"]),
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
                item_key=ASSIGN_OFFSET + int(assignment["id"]),
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
        item_key=QUIZ_OFFSET + int(quiz["id"]),
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
