"""At ``moodle45`` the benchmark's simulator charges the grade pull's reads at
the pace measured on a Moodle 4.5.6: per student and per grade item of each
student in a gradebook report, per course asked for in a listing."""

import json

import pytest

from bench import sim
from openeducat_moodle.moodle.params import encode


@pytest.fixture
def charged(monkeypatch):
    calls = []
    monkeypatch.setattr(sim.MoodleTime, "charge", lambda self, s: calls.append(s))
    return calls


def _post(fm, function, **params):
    body, _fields = encode("t", function, params)
    status, _headers, answer = fm.handle(body.encode("ascii"))
    assert status == 200
    return json.loads(answer)


def _course(fm, students, items):
    courseid = fm.add_course("Algebra", "ALG", idnumber="oec_subj_1_course_1")
    users = [fm.add_user(f"u{n}", email=f"u{n}@uni.test") for n in range(students)]
    for userid in users:
        fm.enrol(courseid, userid, 5)
    for n in range(items):
        item = fm.add_manual_item(courseid, f"Item {n}", grademax=100.0)
        for userid in users[:1]:  # ungraded items are in the report too
            fm.set_manual_grade(item, userid, 50.0)
    return courseid


def test_gradebook_report_is_charged_per_student_and_item(charged):
    fm = sim.IndexedFakeMoodle(token="t")
    courseid = _course(fm, students=4, items=3)
    fm.speed = sim.SPEEDS["moodle45"]
    report = _post(fm, "gradereport_user_get_grade_items", courseid=courseid)
    users = report["usergrades"]
    cells = sum(len(u["gradeitems"]) for u in users)
    assert (len(users), cells) == (4, 16)  # 3 items and the course total each
    assert charged == [pytest.approx(0.029 + 4 * 0.0010 + 16 * 0.00076)]


def test_listings_are_charged_per_call_and_per_course(charged):
    fm = sim.IndexedFakeMoodle(token="t")
    courseid = _course(fm, students=1, items=1)
    fm.speed = sim.SPEEDS["moodle45"]
    _post(fm, "mod_assign_get_assignments", courseids=[courseid, courseid + 1])
    _post(fm, "mod_quiz_get_quizzes_by_courses", courseids=[courseid])
    assert charged == [
        pytest.approx(0.012 + 2 * 0.004),
        pytest.approx(0.012 + 0.001),
    ]


def test_assignment_grades_per_call_and_grade_quiz_per_call(charged):
    fm = sim.IndexedFakeMoodle(token="t")
    courseid = _course(fm, students=3, items=0)
    assign = fm.add_assignment(courseid, "Essay")
    quiz = fm.add_quiz(courseid, "Quiz", grade=10.0)
    users = [u["id"] for u in fm.users.values() if u["username"].startswith("u")]
    for userid in users:
        fm.grade_assignment(assign, userid, 70.0)
    fm.add_quiz_attempt(quiz, users[0], 8.0)
    fm.speed = sim.SPEEDS["moodle45"]
    _post(fm, "mod_assign_get_grades", assignmentids=[assign])
    _post(fm, "mod_quiz_get_user_best_grade", quizid=quiz, userid=users[0])
    assert charged == [pytest.approx(0.013 + 3 * 0.000011), pytest.approx(0.011)]


def test_instant_charges_no_read(charged):
    fm = sim.IndexedFakeMoodle(token="t")
    courseid = _course(fm, students=2, items=2)
    _post(fm, "gradereport_user_get_grade_items", courseid=courseid)
    assert charged == []
