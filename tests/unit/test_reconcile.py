"""Initial import (mapping rebuild, gap report) and drift, on the simulator."""

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.reconcile import DriftCheck, Importer
from openeducat_moodle.sync.store import MemoryStore
from tests.unit.test_push import BASE, NOW, institution, moodle_state


@pytest.fixture
def fm():
    from tests.fake_moodle import FakeMoodle

    fake = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


def client():
    return MoodleClient(BASE, "simtoken")


def pushed(fm):
    store = MemoryStore()
    PushSync(client(), store, PushSettings(), now=NOW).run(institution())
    fm.reset_calls()
    return store


def test_import_rebuilds_the_mapping_table_and_the_next_push_is_free(fm):
    original = pushed(fm)
    rebuilt = MemoryStore()
    importer = Importer(client(), rebuilt, PushSettings(), now=NOW)
    importer.run(institution())
    assert fm.write_call_count() == 0
    assert importer.matched == {
        "category": 7,
        "course": 7,
        "user": 4,
        "group": 5,
        "enrolment": 11,
    }
    for (kind, key), mapping in original.rows.items():
        if mapping.state != "synced":
            continue
        again = rebuilt.get(kind, key)
        assert again is not None, key
        assert (again.moodle_id, again.sync_hash) == (
            mapping.moodle_id,
            mapping.sync_hash,
        )
    PushSync(client(), rebuilt, PushSettings(), now=NOW).run(institution())
    assert fm.write_call_count() == 0


def test_gap_report_names_both_sides(fm):
    pushed(fm)
    # in its program's category: the import reads our categories, not the site
    program = fm.find_category(idnumber="oec_course_10")["id"]
    stray = fm.add_course(
        "Ghost", "GHOST", categoryid=program, idnumber="oec_subj_999_course_10"
    )
    importer = Importer(client(), MemoryStore(), PushSettings(), now=NOW)
    importer.run(institution())
    moodle_side = [g for g in importer.gaps if g["side"] == "moodle"]
    assert [(g["key"], g["moodle_id"]) for g in moodle_side] == [
        ("oec_subj_999_course_10", stray)
    ]
    oec_side = {
        g["key"]: g["reason"] for g in importer.gaps if g["side"] == "openeducat"
    }
    assert "email" in oec_side["oec_student_32"]
    assert "cycle" in oec_side["oec_dept_5"]


def test_import_of_a_site_that_has_nothing_reports_everything_missing(fm):
    importer = Importer(client(), MemoryStore(), PushSettings(), now=NOW)
    importer.run(institution())
    assert sum(importer.matched.values()) == 0
    assert {g["key"] for g in importer.gaps} >= {"oec_dept_1", "oec_student_30"}
    assert fm.write_call_count() == 0


def test_drift_is_found_and_the_next_push_restores_it(fm):
    store = pushed(fm)
    before = moodle_state(fm)
    course = fm.find_course(idnumber="oec_subj_100_course_10")
    fm.courses[course["id"]]["fullname"] = "Renamed by a Moodle admin"
    ann = fm.find_user(idnumber="oec_student_30")
    fm.users[ann["id"]]["email"] = "changed@elsewhere.test"
    bob = fm.find_user(idnumber="oec_student_31")
    fm.unenrol(fm.find_course(idnumber="oec_subj_102_course_10")["id"], bob["id"])
    check = DriftCheck(client(), store, PushSettings(), now=NOW)
    check.run(institution())
    assert fm.write_call_count() == 0
    assert {r["key"] for r in check.drifted} == {
        "oec_subj_100_course_10",
        "oec_student_30",
    }
    assert {r["key"] for r in check.deleted} == {
        "oec_student_31@oec_subj_102_course_10"
    }
    PushSync(client(), store, PushSettings(), now=NOW).run(institution())
    assert moodle_state(fm) == before
    assert fm.find_course(idnumber="oec_subj_100_course_10")["fullname"] == (
        "Mathematics (BSc Physics)"
    )
    fm.reset_calls()
    DriftCheck(client(), store, PushSettings(), now=NOW).run(institution())
    assert fm.write_call_count() == 0


def test_category_deleted_in_moodle_is_recreated(fm):
    store = pushed(fm)
    arts = fm.find_category(idnumber="oec_dept_4")
    fm.delete_category_outside_connector(arts["id"])
    check = DriftCheck(client(), store, PushSettings(), now=NOW)
    check.run(institution())
    assert "oec_dept_4" in {r["key"] for r in check.deleted}
    PushSync(client(), store, PushSettings(), now=NOW).run(institution())
    assert fm.find_category(idnumber="oec_dept_4")
    assert (
        fm.find_category(idnumber="oec_course_12")["parent"]
        == (fm.find_category(idnumber="oec_dept_4")["id"])
    )


def test_names_moodle_returns_html_escaped_are_not_drift():
    """Moodle returns a course's full name through format_string(): "Prog & Co"
    comes back as "Prog &amp; Co" (seen on real 4.5 sites)."""
    from openeducat_moodle.sync.reconcile import differences

    payload = {"fullname": "Algebra (Prog & Co)", "summary": "<p>R&amp;D</p>"}
    moodle = {"fullname": "Algebra (Prog &amp; Co)", "summary": "<p>R&amp;D</p>"}
    assert differences(payload, moodle) == []
    assert differences(payload, {**moodle, "fullname": "Edited"}) == ["fullname"]
