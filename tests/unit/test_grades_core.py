"""Grade rows, hashing and conversion (no Moodle, no Odoo)."""

import pytest

from openeducat_moodle.sync.grades import (
    QUIZ_OFFSET,
    assignment_rows,
    convert,
    exam_code,
    grade_hash,
    gradebook_rows,
    legacy_item,
    parse_legacy_exam_code,
    quiz_row,
    settings_digest,
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
        ("gb:2", 72.5, 100),
        ("gb:4", 42.5, 50),
    ]
    assert gradebook_rows(REPORT, skip_modules={"assign"})[0].item_key == "gb:4"


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
    assert [(r.userid, r.raw, r.item_key) for r in rows] == [(4, 72.5, "as:7")]


def test_quiz_best_grade_is_keyed_by_source_and_no_attempt_gives_nothing():
    quiz = {"id": 3, "name": "Q", "grade": 10}
    row = quiz_row(2, quiz, 4, {"hasgrade": True, "grade": 8.5})
    assert (row.item_key, row.raw, row.grademax) == ("qz:3", 8.5, 10)
    assert quiz_row(2, quiz, 4, {"hasgrade": False, "warnings": []}) is None


def _item(itemid, name, raw, grademax=100):
    return {
        "id": itemid,
        "itemname": name,
        "itemtype": "manual",
        "graderaw": raw,
        "grademax": grademax,
        "grademin": 0,
    }


def test_ids_past_a_million_never_collide_across_sources():
    """A gradebook item id of 1,000,000 + n was the key of quiz n (and of its
    exam code): each source keeps its own key now."""
    big = QUIZ_OFFSET + 3
    report = [{"courseid": 2, "userid": 4, "gradeitems": [_item(big, "Big", 40)]}]
    (gradebook,) = gradebook_rows(report)
    quiz = quiz_row(
        2, {"id": 3, "name": "Q", "grade": 10}, 4, {"hasgrade": 1, "grade": 8}
    )
    (assign,) = assignment_rows(
        2, {"id": big, "name": "A", "grade": 100}, [{"userid": 4, "grade": 50}]
    )
    keys = [gradebook.item_key, quiz.item_key, assign.item_key]
    assert keys == [f"gb:{big}", "qz:3", f"as:{big}"]
    codes = {
        exam_code(1, row.source, row.item_id, 77) for row in (gradebook, quiz, assign)
    }
    assert codes == {"M1.G.LFLV.25", "M1.Q.3.25", "M1.A.LFLV.25"}
    # Ids as large as Moodle's (2^31) still fit OpenEduCat's 16 characters.
    assert len(exam_code(35, "gradebook", 2**31 - 1, 36**4 - 1)) == 16


def test_exam_codes_never_equal_the_old_ones_nor_get_cut():
    # Old form: M<instance>.<key>.<batch>; a new code has four parts.
    assert parse_legacy_exam_code("M1.LFLV.25") == (1, QUIZ_OFFSET + 3, 77)
    assert parse_legacy_exam_code(exam_code(1, "quiz", 3, 77)) is None
    assert parse_legacy_exam_code("MID-ALG-G") is None
    with pytest.raises(ValueError, match="16"):
        exam_code(36**3, "gradebook", 2**40, 36**5)


@pytest.mark.parametrize(
    ("old", "source", "expected"),
    [
        (17, "gradebook", ("gradebook", 17)),
        (QUIZ_OFFSET + 3, "quiz", ("quiz", 3)),
        # The collision: the recorded source tells the two apart.
        (QUIZ_OFFSET + 3, "gradebook", ("gradebook", QUIZ_OFFSET + 3)),
        (2_000_007, "assign", ("assign", 7)),
        # No recorded source: the offsets decide.
        (17, None, ("gradebook", 17)),
        (QUIZ_OFFSET + 3, None, ("quiz", 3)),
        (2_000_007, None, ("assign", 7)),
        # A source that does not fit the key: the offsets decide.
        (17, "quiz", ("gradebook", 17)),
    ],
)
def test_old_keys_are_read_with_their_recorded_source(old, source, expected):
    assert legacy_item(old, source) == expected


def test_hash_changes_with_grade_or_range():
    assert grade_hash(72.5, 100) == grade_hash(72.50, 100.0)
    assert grade_hash(72.5, 100) != grade_hash(73, 100)
    assert grade_hash(72.5, 100) != grade_hash(72.5, 80)
    assert grade_hash(72.5, 100) != grade_hash(72.5, 100, grademin=10)


BANDS = [("A", 80, 100), ("B", 60, 79.99), ("F", 0, 59.99)]


def test_hash_changes_with_the_conversion_settings():
    """Changing the scale, the pass threshold or the letter bands changes
    the hash of an unchanged grade: the next pull converts it again."""
    base = settings_digest("percentage", 50.0, BANDS)
    changed = [
        settings_digest("points", 50.0, BANDS),
        settings_digest("percentage", 55.0, BANDS),
        settings_digest("letter", 50.0, BANDS),
        settings_digest("letter", 50.0, [("A", 90, 100), *BANDS[1:]]),
    ]
    hashes = {grade_hash(72.5, 100, 0, digest) for digest in [base, *changed]}
    assert len(hashes) == 5


def test_settings_digest_ignores_what_does_not_change_marks():
    # Letter bands count only on the letter scale; their order never does.
    assert settings_digest("percentage", 50, BANDS) == settings_digest(
        "percentage", 50.0, []
    )
    assert settings_digest("letter", 50, BANDS) == settings_digest(
        "letter", 50.0, list(reversed(BANDS))
    )


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
