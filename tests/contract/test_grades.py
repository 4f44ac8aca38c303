"""Grade report rows and course completion."""

import pytest

from openeducat_moodle.moodle import MoodleRecordError


@pytest.fixture
def classroom(moodle):
    """A course with two students and an editing teacher."""
    course = moodle.new_course(enablecompletion=1)
    students = [moodle.new_user(), moodle.new_user()]
    teacher = moodle.new_user()
    for student in students:
        moodle.enrol(course["id"], student["id"], "student")
    moodle.enrol(course["id"], teacher["id"], "editingteacher")
    return course, students, teacher


def _rows(entry, itemtype):
    return [row for row in entry["gradeitems"] if row["itemtype"] == itemtype]


def test_grade_report_has_one_entry_per_student(moodle, classroom):
    # Web services cannot create graded activities: on a real site only the
    # course-total row exists, so this checks the report's shape.
    course, students, teacher = classroom

    usergrades = moodle.client.get_grade_items(course["id"])

    assert sorted(e["userid"] for e in usergrades) == sorted(s["id"] for s in students)
    assert teacher["id"] not in {e["userid"] for e in usergrades}
    for entry in usergrades:
        assert entry["courseid"] == course["id"]
        assert entry["courseidnumber"] == course["idnumber"]
        assert entry["useridnumber"] in {s["idnumber"] for s in students}
        (total,) = _rows(entry, "course")
        assert total["graderaw"] is None
        assert total["itemname"] is None and total["itemmodule"] is None
        assert "cmid" not in total
        for key in ("id", "iteminstance", "itemnumber", "idnumber", "categoryid"):
            assert key in total, key


def test_grade_report_for_one_user(moodle, classroom):
    course, students, teacher = classroom

    mine = moodle.client.get_grade_items(course["id"], userid=students[1]["id"])
    theirs = moodle.client.get_grade_items(course["id"], userid=teacher["id"])

    assert [e["userid"] for e in mine] == [students[1]["id"]]
    # asked by id, the teacher gets a report too
    assert [e["userid"] for e in theirs] == [teacher["id"]]


def test_grade_report_of_a_course_without_students_is_empty(moodle):
    course = moodle.new_course()

    assert moodle.client.get_grade_items(course["id"]) == []


@pytest.mark.sim_only("graded activities cannot be created through web services")
def test_grade_report_rows_for_activities_and_manual_items(moodle, classroom):
    course, students, _teacher = classroom
    fm = moodle.fm
    assign = fm.add_assignment(course["id"], "Essay", idnumber="essay")
    quiz = fm.add_quiz(course["id"], "Quiz")
    gradecat = fm.add_grade_category(course["id"], "Exams")
    manual = fm.add_manual_item(
        course["id"], "Oral", idnumber="oral", category=gradecat
    )
    fm.grade_assignment(assign, students[0]["id"], 72.5)
    fm.set_manual_grade(manual, students[0]["id"], 42.5)

    usergrades = moodle.client.get_grade_items(course["id"])

    entry = {e["userid"]: e for e in usergrades}[students[0]["id"]]
    (essay,) = [r for r in _rows(entry, "mod") if r["itemmodule"] == "assign"]
    assert essay["iteminstance"] == assign
    assert essay["graderaw"] == 72.5 and essay["idnumber"] == "essay"
    assert "cmid" in essay
    quizrow = [r for r in _rows(entry, "mod") if r["itemmodule"] == "quiz"]
    assert [(r["iteminstance"], r["graderaw"]) for r in quizrow] == [(quiz, None)]
    (oral,) = _rows(entry, "manual")
    assert (oral["idnumber"], oral["graderaw"]) == ("oral", 42.5)
    assert "cmid" not in oral
    assert len(_rows(entry, "category")) == 1
    (total,) = _rows(entry, "course")
    assert total["graderaw"] == 115
    other = {e["userid"]: e for e in usergrades}[students[1]["id"]]
    assert all(r["graderaw"] is None for r in other["gradeitems"])


def test_completion_without_criteria_is_none(moodle, classroom):
    course, students, _teacher = classroom

    status = moodle.client.get_course_completion_status(course["id"], students[0]["id"])

    assert status is None


def test_completion_of_a_teacher_is_usernotenroled(moodle, classroom):
    course, _students, teacher = classroom

    with pytest.raises(MoodleRecordError) as caught:
        moodle.client.get_course_completion_status(course["id"], teacher["id"])

    assert caught.value.errorcode == "usernotenroled"


@pytest.mark.sim_only("completion criteria cannot be set through web services")
def test_completion_with_criteria(moodle, classroom):
    course, students, _teacher = classroom
    moodle.fm.set_completion_criteria(course["id"], types=(1,))
    moodle.fm.complete_course(course["id"], students[0]["id"])

    done = moodle.client.get_course_completion_status(course["id"], students[0]["id"])
    todo = moodle.client.get_course_completion_status(course["id"], students[1]["id"])

    assert done["completed"] is True
    assert todo["completed"] is False
    assert [c["type"] for c in todo["completions"]] == [1]
    assert todo["completions"][0]["timecompleted"] is None
