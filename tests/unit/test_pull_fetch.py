"""GradeFetcher against the simulator: the rows Moodle's grades become."""

import pytest
import responses

from openeducat_moodle.moodle import (
    MoodleAccessError,
    MoodleClient,
    MoodleTransientError,
)
from openeducat_moodle.sync.pull import GradeFetcher
from tests.fake_moodle import FakeMoodle

BASE = "https://moodle.test"


@pytest.fixture
def site():
    fm = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fm.install(rsps, base_url=BASE)
        cat = fm.add_category("Cat") if hasattr(fm, "add_category") else 1
        cid = fm.add_course(
            "Algebra", "ALG", categoryid=cat if isinstance(cat, int) else 1
        )
        ann = fm.add_user("ann", email="ann@x.test")
        ben = fm.add_user("ben", email="ben@x.test")
        teacher = fm.add_user("tea", email="t@x.test")
        for user, role in ((ann, 5), (ben, 5), (teacher, 3)):
            fm.enrol(cid, user, role)
        assign = fm.add_assignment(cid, "Essay", grademax=100.0)
        fm.grade_assignment(assign, ann, 72.5)
        quiz = fm.add_quiz(cid, "Quiz", grade=10.0)
        for grade in (6.0, 8.5, 7.0):
            fm.add_quiz_attempt(quiz, ann, grade)
        category = fm.add_grade_category(cid, "Orals")
        oral = fm.add_manual_item(cid, "Oral", grademax=50.0, category=category)
        fm.set_manual_grade(oral, ann, 42.5)
        fm.reset_calls()
        yield (
            fm,
            cid,
            {"ann": ann, "ben": ben},
            {"assign": assign, "quiz": quiz, "oral": oral},
        )


def test_rows_from_every_source_counted_once(site):
    fm, cid, users, items = site
    client = MoodleClient(BASE, "simtoken")
    (course,) = GradeFetcher(client).fetch([cid], {cid: list(users.values())})
    got = sorted(
        (r.userid, r.item_key, r.source, r.raw, r.grademax) for r in course.rows
    )
    assert got == sorted(
        [
            (users["ann"], f"gb:{items['oral']}", "gradebook", 42.5, 50.0),
            (users["ann"], f"as:{items['assign']}", "assign", 72.5, 100.0),
            (users["ann"], f"qz:{items['quiz']}", "quiz", 8.5, 10.0),
        ]
    )
    assert fm.call_counts["gradereport_user_get_grade_items"] == 1
    assert fm.call_counts["mod_quiz_get_user_best_grade"] == 2  # per student
    assert fm.write_call_count() == 0


def test_gradebook_alone_takes_activity_rows_from_the_gradebook(site):
    fm, cid, users, items = site
    client = MoodleClient(BASE, "simtoken")
    fetcher = GradeFetcher(client, assignments=False, quizzes=False)
    (course,) = fetcher.fetch([cid])
    assert {r.source for r in course.rows} == {"gradebook"}
    assert len(course.rows) == 3  # assign, quiz (best), manual; no totals
    assert fm.call_counts.get("mod_assign_get_grades", 0) == 0


def test_a_course_gone_from_moodle_is_reported_and_the_rest_pulled(site):
    fm, cid, users, items = site
    client = MoodleClient(BASE, "simtoken")
    results = list(
        GradeFetcher(client, assignments=False, quizzes=False).fetch([999999, cid])
    )
    assert results[0].error is not None and results[0].rows == []
    assert results[1].error is None and results[1].rows


def test_access_error_stops_the_pull(site):
    fm, cid, users, items = site
    fm.remove_function("gradereport_user_get_grade_items")
    client = MoodleClient(BASE, "simtoken")
    with pytest.raises(MoodleAccessError):
        list(GradeFetcher(client, assignments=False, quizzes=False).fetch([cid]))


def test_lists_are_asked_per_chunk_of_our_courses(site):
    fm, cid, users, items = site
    others = [fm.add_course(f"C{n}", f"C{n}", categoryid=1) for n in range(3)]
    fm.reset_calls()
    client = MoodleClient(BASE, "simtoken")
    fetcher = GradeFetcher(client)
    fetcher.LIST_CHUNK = 2
    courses = [cid, *others]
    got = [course.courseid for course in fetcher.fetch(courses)]
    assert got == courses
    asked = [
        sorted(int(c) for c in params["courseids"])
        for name, params in fm.calls
        if name == "mod_assign_get_assignments"
    ]
    assert asked == [sorted(courses[:2]), sorted(courses[2:])]
    assert fm.call_counts["mod_quiz_get_quizzes_by_courses"] == 2


def test_the_course_moodle_failed_at_is_known(site):
    fm, cid, users, items = site
    other = fm.add_course("Other", "OTH", categoryid=1)
    client = MoodleClient(BASE, "simtoken")
    fetcher = GradeFetcher(client, quizzes=False)
    fetcher.LIST_CHUNK = 1
    assert fetcher.current is None
    fm.inject("http500", function="gradereport_user_get_grade_items", times=1000)
    with pytest.raises(MoodleTransientError):
        list(fetcher.fetch([cid, other]))
    assert fetcher.current == cid
    fm.faults.clear()
    # A list call that fails is put on the first course of its chunk.
    fm.inject("http500", function="mod_assign_get_assignments", times=1000, after=1)
    fetcher = GradeFetcher(client, quizzes=False)
    fetcher.LIST_CHUNK = 1
    with pytest.raises(MoodleTransientError):
        list(fetcher.fetch([cid, other]))
    assert fetcher.current == other
