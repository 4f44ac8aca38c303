"""What OpenEduCat holds, as plain rows the sync core can plan from.

The Odoo services read records into these; the tests and the benchmark build
them directly.
"""

import dataclasses
import datetime


@dataclasses.dataclass(frozen=True)
class Department:
    id: int
    name: str
    code: str = ""
    parent_id: int | None = None


@dataclasses.dataclass(frozen=True)
class Program:
    """An ``op.course``: a sub-category under its department's category."""

    id: int
    name: str
    code: str
    department_id: int | None = None
    subject_ids: tuple = ()
    active: bool = True


@dataclasses.dataclass(frozen=True)
class Subject:
    id: int
    name: str
    code: str
    department_id: int | None = None
    active: bool = True


@dataclasses.dataclass(frozen=True)
class Batch:
    id: int
    name: str
    code: str
    course_id: int
    active: bool = True
    # ``datetime.date``: the batch's first and last day (``None``: unknown,
    # the batch gives its program's courses no dates)
    start_date: datetime.date | None = None
    end_date: datetime.date | None = None


@dataclasses.dataclass(frozen=True)
class Person:
    """An ``op.student`` or ``op.faculty`` (``kind``).

    ``partner_id``: the ``res.partner`` behind it (a student and a faculty
    member with one partner are one person, with one Moodle account); ``lang``
    is Moodle's language code (:func:`.accounts.moodle_lang`); ``country`` the
    ISO 3166 2-letter code, ``address`` one line (street, street 2).
    """

    id: int
    kind: str
    first_name: str
    last_name: str
    email: str | None
    login: str | None = None
    active: bool = True
    subject_ids: tuple = ()
    department_id: int | None = None
    lang: str | None = None
    city: str | None = None
    country: str | None = None
    phone: str | None = None
    partner_id: int | None = None
    address: str | None = None


@dataclasses.dataclass(frozen=True)
class Enrolment:
    """An ``op.student.course``: a student in a program (and batch)."""

    id: int
    student_id: int
    course_id: int
    batch_id: int | None = None
    subject_ids: tuple = ()
    active: bool = True


@dataclasses.dataclass
class Snapshot:
    """Everything a push plans from, keyed by OpenEduCat id; ``tz`` is the
    institution's time zone (a course's dates are its batches' days there)."""

    departments: dict = dataclasses.field(default_factory=dict)
    programs: dict = dataclasses.field(default_factory=dict)
    subjects: dict = dataclasses.field(default_factory=dict)
    batches: dict = dataclasses.field(default_factory=dict)
    students: dict = dataclasses.field(default_factory=dict)
    faculty: dict = dataclasses.field(default_factory=dict)
    enrolments: dict = dataclasses.field(default_factory=dict)
    tz: str = "UTC"

    @classmethod
    def build(cls, tz="UTC", **lists):
        """Build from lists of rows: ``Snapshot.build(departments=[...], ...)``."""
        return cls(
            **{name: {row.id: row for row in rows} for name, rows in lists.items()},
            tz=tz,
        )
