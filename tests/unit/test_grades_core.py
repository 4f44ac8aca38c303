"""Grade rows, hashing and conversion (no Moodle, no Odoo)."""

import pytest

from openeducat_moodle.sync.grades import (
    ASSIGN_OFFSET,
    QUIZ_OFFSET,
    assignment_rows,
    convert,
    grade_hash,
    gradebook_rows,
    quiz_row,
)

REPORT = [
    {
        "courseid": 2,
        "userid": 4,
        "gradeitems": [
            {
                "id": 2,
                "itemname": "Essay",
                "itemtype": "mod",
                "itemmodule": "assign",
                "iteminstance": 1,
                "graderaw": 72.5,
                "grademax": 100,
                "grademin": 0,
            },
            {
                "id": 3,
                "itemname": "Quiz",
                "itemtype": "mod",
                "itemmodule": "quiz",
                "iteminstance": 1,
                "graderaw": None,
                "grademax": 10,
                "grademin": 0,
            },
            {
                "id": 4,
                "itemname": "Oral",
                "itemtype": "manual",
                "itemmodule": None,
                "graderaw": 42.5,
                "grademax": 50,
                "grademin": 0,
            },
            {
                "id": 5,
                "itemname": None,
                "itemtype": "category",
                "graderaw": 42.5,
                "grademax": 50,
            },
            {
                "id": 1,
                "itemname": None,
                "itemtype": "course",
                "graderaw": 115,
                "grademax": 150,
            },
        ],
    }
]


def test_gradebook_rows_skip_totals_and_ungraded():
    rows = gradebook_rows(REPORT)
    assert [(r.item_key, r.raw, r.grademax) for r in rows] == [
        (2, 72.5, 100),
        (4, 42.5, 50),
    ]
    assert gradebook_rows(REPORT, skip_modules={"assign"})[0].item_key == 4


def test_assignment_rows_skip_missing_and_placeholder_grades():
    rows = assignment_rows(
        2,
        {"id": 7, "name": "Essay", "grade": 100},
        [
            {"userid": 4, "grade": "72.50000"},
            {"userid": 5, "grade": "-1.00000"},
            {"userid": 6, "grade": None},
        ],
    )
    assert [(r.userid, r.raw, r.item_key) for r in rows] == [
        (4, 72.5, ASSIGN_OFFSET + 7)
    ]


def test_quiz_best_grade_is_offset_and_no_attempt_gives_nothing():
    quiz = {"id": 3, "name": "Q", "grade": 10}
    row = quiz_row(2, quiz, 4, {"hasgrade": True, "grade": 8.5})
    assert (row.item_key, row.raw, row.grademax) == (QUIZ_OFFSET + 3, 8.5, 10)
    assert quiz_row(2, quiz, 4, {"hasgrade": False, "warnings": []}) is None


def test_hash_changes_with_grade_or_max_only():
    assert grade_hash(72.5, 100) == grade_hash(72.50, 100.0)
    assert grade_hash(72.5, 100) != grade_hash(73, 100)
    assert grade_hash(72.5, 100) != grade_hash(72.5, 80)


@pytest.mark.parametrize(
    ("raw", "grademax", "scale", "marks", "total", "letter", "passed"),
    [
        (72.5, 100, "percentage", 73, 100, None, True),
        (7.25, 10, "percentage", 73, 100, None, True),
        (49.4, 100, "percentage", 49, 100, None, False),
        (8.5, 10, "points", 9, 10, None, True),
        (42.5, 50, "points", 43, 50, None, True),
        (91, 100, "letter", 91, 100, "A", True),
        (85.5, 100, "letter", 86, 100, "B", True),
        (12, 100, "letter", 12, 100, "F", False),
    ],
)
def test_conversion(raw, grademax, scale, marks, total, letter, passed):
    bands = [("A", 90, 100), ("B", 80, 89.99), ("C", 50, 79.99), ("F", 0, 49.99)]
    got = convert(raw, grademax, scale=scale, threshold=50, bands=bands)
    assert (got.marks, got.total, got.letter, got.passed) == (
        marks,
        total,
        letter,
        passed,
    )


def test_pass_mark_follows_threshold_and_is_never_zero():
    assert convert(5, 10, scale="points", threshold=50).min_marks == 5
    assert convert(5, 10, scale="points", threshold=55).min_marks == 6
    assert convert(5, 10, scale="percentage", threshold=0).min_marks == 1
