"""What OpenEduCat holds, as plain rows the sync core can plan from.

The Odoo services read records into these; the tests and the benchmark build
them directly.
"""

import dataclasses


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


@dataclasses.dataclass(frozen=True)
class Person:
    """An ``op.student`` or ``op.faculty`` (``kind``).

    ``partner_id``: the ``res.partner`` behind it (a student and a faculty
    member with one partner are one person, with one Moodle account); ``lang``
    is Moodle's language code (:func:`.accounts.moodle_lang`).
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
    """Everything a push plans from, keyed by OpenEduCat id."""

    departments: dict = dataclasses.field(default_factory=dict)
    programs: dict = dataclasses.field(default_factory=dict)
    subjects: dict = dataclasses.field(default_factory=dict)
    batches: dict = dataclasses.field(default_factory=dict)
    students: dict = dataclasses.field(default_factory=dict)
    faculty: dict = dataclasses.field(default_factory=dict)
    enrolments: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, **lists):
        """Build from lists of rows: ``Snapshot.build(departments=[...], ...)``."""
        return cls(
            **{name: {row.id: row for row in rows} for name, rows in lists.items()}
        )
