"""Deterministic Moodle idnumbers and mapping keys.

Every Moodle object the connector creates carries an idnumber that encodes the
OpenEduCat id, so the mapping table can be rebuilt from Moodle alone.
"""

import re

PREFIX = "oec_"


def department(dept_id):
    return f"oec_dept_{dept_id}"


def program(course_id):
    return f"oec_course_{course_id}"


def subject_course(subject_id, course_id):
    return f"oec_subj_{subject_id}_course_{course_id}"


def batch(batch_id):
    return f"oec_batch_{batch_id}"


def student(student_id):
    return f"oec_student_{student_id}"


def faculty(faculty_id):
    return f"oec_faculty_{faculty_id}"


def base36(number):
    """Short upper-case base-36 form of a non-negative id, for OpenEduCat's
    16-character codes."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def pair(first, second):
    """Key of an object that lives inside another (a group in a course, an
    enrolment of a user in a course): ``oec_batch_3@oec_subj_15_course_7``."""
    return f"{first}@{second}"


_PATTERNS = [
    ("department", re.compile(r"^oec_dept_(\d+)$")),
    ("program", re.compile(r"^oec_course_(\d+)$")),
    ("subject_course", re.compile(r"^oec_subj_(\d+)_course_(\d+)$")),
    ("batch", re.compile(r"^oec_batch_(\d+)$")),
    ("student", re.compile(r"^oec_student_(\d+)$")),
    ("faculty", re.compile(r"^oec_faculty_(\d+)$")),
]


def parse(idnumber):
    """Return ``(kind, ids)`` for one of our idnumbers, else ``None``.

    >>> parse("oec_subj_15_course_7")
    ('subject_course', (15, 7))
    """
    for kind, pattern in _PATTERNS:
        match = pattern.match(idnumber or "")
        if match:
            return kind, tuple(int(g) for g in match.groups())
    return None
