"""Course details (summary, dates) and people's contact data, as Moodle keeps them.

What the push sends of a course besides its names (an HTML summary built from
OpenEduCat's data, the start and end dates of its program's batches) and of a
person (city, country, phone, address), what Moodle returns of them, and how
it judges course dates, so that the simulator answers as Moodle 4.5 and 5.1
do, and the drift check compares what Moodle really holds:

* a summary in FORMAT_HTML comes back exactly as sent (escaped characters,
  quotes and accents included), with ``summaryformat`` 1;
* a course created without dates starts at today's midnight and ends a year
  later; Moodle judges only the dates a call sends (an end date alone is
  refused, a start after the course's stored end is not);
* changing a course's summary needs ``moodle/course:changesummary``;
* a user's city, country and address come back as sent, and are left out once
  emptied; the phone comes back only to a site administrator (the simulator's
  token user is one) or where the site lists it among identity fields; a
  country not in Moodle's list (lower case included) is dropped silently.
"""

import datetime
import secrets

import pytest

from openeducat_moodle.sync import idnumbers
from openeducat_moodle.sync.push import (
    FORMAT_HTML,
    PushSettings,
    PushSync,
    course_dates,
    course_summary,
)
from openeducat_moodle.sync.reconcile import DriftCheck, differences
from openeducat_moodle.sync.rows import (
    Batch,
    Department,
    Person,
    Program,
    Snapshot,
    Subject,
)
from openeducat_moodle.sync.store import MemoryStore

YEAR = 365 * 86400
START = 1788220800  # 2026-09-01 00:00 UTC
NO_SUMMARY_RIGHT = (
    "the token's role lacks moodle/course:changesummary: the catalogue must list "
    "it for core_course_update_courses (then configure the service again)"
)


def _names(moodle):
    """Names with what HTML escaping must survive: & < > quotes, accents."""
    tag = moodle.name("d")
    subject = Subject(1, f'Maths & "Stats" <{tag}>', f"S{tag}")
    program = Program(2, "L'École d'ingénieurs", f"P{tag}", 3)
    return subject, program, Department(3, "Sciences & Technologies")


def _one_course(moodle, **extra):
    category = moodle.new_category()
    return moodle.new_course(category["id"], **extra)


def _read(moodle, courseid):
    (course,) = moodle.client.get_courses_by_field("id", str(courseid))
    return course


def _warning(result):
    outcome = result.outcomes[0]
    if outcome.ok:
        return None
    return getattr(outcome.error, "errorcode", None)


# -------------------------------------------------------------------- courses
def test_a_summary_and_dates_come_back_as_sent(moodle):
    subject, program, department = _names(moodle)
    summary = course_summary(subject, program, department)
    dates = course_dates(
        [
            Batch(1, "B", "B", 2, start_date=datetime.date(2026, 9, 1),
                  end_date=datetime.date(2027, 6, 30)),
        ],
        "Europe/Paris",
    )  # fmt: skip
    course = _one_course(moodle, summary=summary, summaryformat=FORMAT_HTML, **dates)

    got = _read(moodle, course["id"])

    assert got["summary"] == summary
    assert got["summaryformat"] == FORMAT_HTML
    assert (got["startdate"], got["enddate"]) == (
        dates["startdate"],
        dates["enddate"],
    )
    # and in the listing the push and the drift check read
    listed = {c["id"]: c for c in moodle.client.get_courses_by_field()}
    sent = {"summary": summary, "summaryformat": FORMAT_HTML, **dates}
    assert differences(sent, listed[course["id"]]) == []


def test_a_course_created_without_dates_starts_today_and_ends_a_year_later(moodle):
    course = _one_course(moodle)

    got = _read(moodle, course["id"])

    assert got["enddate"] - got["startdate"] == YEAR
    # midnight in the site's time zone (a day may have 25 hours)
    assert 0 <= got["timecreated"] - got["startdate"] < 86400 + 3600
    assert got["summary"] == "" and got["summaryformat"] == FORMAT_HTML


def test_an_end_before_the_start_is_refused_on_create(moodle):
    category = moodle.new_category()
    record = moodle.course_record(category["id"], startdate=START, enddate=START - 100)

    result = moodle.track("courses", moodle.client.create_courses([record]))

    assert _warning(result) == "enddatebeforestartdate"
    assert moodle.client.get_course_by_idnumber(record["idnumber"]) is None


def test_an_update_judges_only_the_dates_it_sends(moodle):
    course = _one_course(moodle, startdate=START, enddate=START + YEAR)
    update = moodle.client.update_courses

    # an end date alone: Moodle does not look at the start the course has
    assert _warning(update([{"id": course["id"], "enddate": START + 2 * YEAR}])) == (
        "nostartdatenoenddate"
    )
    # a start after the stored end passes (the stored end is not compared)
    assert _warning(update([{"id": course["id"], "startdate": START + 2 * YEAR}])) is (
        None
    )
    assert _read(moodle, course["id"])["startdate"] == START + 2 * YEAR
    # both: the end must not be before the start; equal is allowed
    both = {"id": course["id"], "startdate": START, "enddate": START - 60}
    assert _warning(update([both])) == "enddatebeforestartdate"
    assert _warning(update([{**both, "enddate": START}])) is None
    # 0: no end date
    assert _warning(update([{**both, "enddate": 0}])) is None
    got = _read(moodle, course["id"])
    assert (got["startdate"], got["enddate"]) == (START, 0)


def test_changing_a_summary_needs_changesummary(moodle):
    course = _one_course(moodle, summary="<p>first</p>", summaryformat=FORMAT_HTML)

    result = moodle.client.update_courses(
        [{"id": course["id"], "summary": "<p>second</p>", "summaryformat": 1}]
    )

    if moodle.real and _warning(result) == "nopermissions":
        assert "summary" in str(result.outcomes[0].error).lower()
        pytest.xfail(NO_SUMMARY_RIGHT)
    assert _warning(result) is None
    assert _read(moodle, course["id"])["summary"] == "<p>second</p>"


# ---------------------------------------------------- the push and the drift
def _institution(moodle, **batch):
    """A department, a program with one subject, a batch: ids no other run
    uses, codes unique to the run."""
    base = 900_000_000 + secrets.randbelow(99_999_999)
    tag = moodle.name("x").replace("-", "")
    return Snapshot.build(
        departments=[Department(base, f"Dept {tag}")],
        programs=[Program(base, f"Program {tag}", f"P{tag}", base, (base,))],
        subjects=[Subject(base, f"Algebra & {tag}", f"S{tag}")],
        batches=[Batch(base, "Batch", f"B{tag}", base, **batch)],
        tz="Asia/Kolkata",
    )


def _push_structure(moodle, snapshot, store, engine=PushSync):
    settings = PushSettings(phases=("departments", "programs", "subjects"))
    sync = engine(moodle.client, store, settings)
    try:
        sync.run(snapshot)
    finally:
        ids = {c["idnumber"]: c["id"] for c in moodle.client.get_categories()}
        for dept in snapshot.departments:
            if idnumbers.department(dept) in ids:
                cat = ids[idnumbers.department(dept)]
                if cat not in moodle.cleanup.categories:
                    moodle.cleanup.categories.append(cat)
        for mapping in store.load("course").values():
            if mapping.moodle_id and mapping.moodle_id not in moodle.cleanup.courses:
                moodle.cleanup.courses.append(mapping.moodle_id)
    return sync


def test_the_push_sends_the_details_and_puts_back_what_moodle_changed(moodle):
    snapshot = _institution(
        moodle,
        start_date=datetime.date(2026, 9, 1),
        end_date=datetime.date(2027, 6, 30),
    )
    store = MemoryStore()
    (program,) = snapshot.programs.values()
    (subject,) = snapshot.subjects.values()
    key = idnumbers.subject_course(subject.id, program.id)
    _push_structure(moodle, snapshot, store)
    course = moodle.client.get_course_by_idnumber(key)
    dept = snapshot.departments[program.department_id]
    assert course["summary"] == course_summary(subject, program, dept)
    # Asia/Kolkata is UTC+5:30: from the first day's midnight there to the
    # last day's 23:59
    kolkata = 5 * 3600 + 1800
    assert course["startdate"] == START - kolkata
    assert course["enddate"] == 1814400000 - kolkata - 60  # 2027-07-01 00:00 UTC

    moodle.client.update_courses(
        [{"id": course["id"], "fullname": "Edited", "startdate": START, "enddate": 0}]
    ).raise_if_aborted()
    drift = _push_structure(moodle, snapshot, store, engine=DriftCheck)
    (record,) = drift.drifted
    assert record["key"] == key
    assert record["reason"] == "changed in Moodle: fullname, startdate, enddate"

    _push_structure(moodle, snapshot, store)
    again = moodle.client.get_course_by_idnumber(key)
    assert again["fullname"] == course["fullname"]
    assert (again["startdate"], again["enddate"]) == (
        course["startdate"],
        course["enddate"],
    )

    result = moodle.client.update_courses(
        [{"id": course["id"], "summary": "<p>edited in Moodle</p>"}]
    )
    if moodle.real and _warning(result) == "nopermissions":
        pytest.xfail(NO_SUMMARY_RIGHT)
    drift = _push_structure(moodle, snapshot, store, engine=DriftCheck)
    assert [r["reason"] for r in drift.drifted] == ["changed in Moodle: summary"]
    _push_structure(moodle, snapshot, store)
    assert moodle.client.get_course_by_idnumber(key)["summary"] == course["summary"]


# --------------------------------------------------------------------- people
def test_contact_fields_come_back_as_sent_and_go_once_emptied(moodle):
    contact = {
        "city": "Saint-Étienne",
        "country": "FR",
        "phone1": "+33 4 77 00 00 00",
        "address": "1 rue de l'Église, Bât B",
    }
    user = moodle.new_user(**contact)

    (got,) = moodle.client.get_users_by_field("id", [user["id"]])

    assert {k: got.get(k) for k in ("city", "country", "address")} == {
        k: contact[k] for k in ("city", "country", "address")
    }
    # the phone: to a site administrator only (the simulator's token user)
    assert got.get("phone1") in (contact["phone1"], None)
    if not moodle.real:
        assert got["phone1"] == contact["phone1"]
    assert differences(contact, got) == []

    result = moodle.client.update_users(
        [{"id": user["id"], **dict.fromkeys(contact, "")}]
    )
    assert result.outcomes[0].ok, result.outcomes[0].error
    (got,) = moodle.client.get_users_by_field("id", [user["id"]])
    assert not set(contact) & set(got)


def test_a_country_moodle_does_not_list_is_dropped_silently(moodle):
    user = moodle.new_user(country="FR", city="Lyon")

    result = moodle.client.update_users([{"id": user["id"], "country": "fr"}])

    assert result.outcomes[0].ok, result.outcomes[0].error
    (got,) = moodle.client.get_users_by_field("id", [user["id"]])
    assert "country" not in got and got["city"] == "Lyon"


def test_the_push_sends_contact_data_and_puts_back_what_moodle_changed(moodle):
    pid = 900_000_000 + secrets.randbelow(99_999_999)
    ann = Person(
        pid,
        "student",
        "Contract",
        moodle.prefix,
        f"{moodle.name('usr')}@example.com",
        city="Lyon",
        country="fr",
        phone="+33 (0)4 77 00 00 00 00",  # 23 characters: compacted
        address="1 rue de l'Église, Bât B",
    )
    snapshot = Snapshot.build(students=[ann])
    store = MemoryStore()
    settings = PushSettings(phases=("users",))
    key = idnumbers.student(pid)

    def run(engine=PushSync):
        sync = engine(moodle.client, store, settings)
        try:
            sync.run(snapshot)
        finally:
            for user in moodle.client.get_users_by_field("idnumber", [key]):
                if user["id"] not in moodle.cleanup.users:
                    moodle.cleanup.users.append(user["id"])
        return sync

    result = run().result
    (user,) = moodle.client.get_users_by_field("idnumber", [key])
    assert (user["city"], user["country"], user["address"]) == (
        "Lyon",
        "FR",
        "1 rue de l'Église, Bât B",
    )
    assert user.get("phone1") in ("+33047700000000", None)  # 23 → 15 characters
    (note,) = [r for r in result.phases["users"].records if r["action"] == "shortened"]
    assert "phone1 written without spaces" in note["reason"]

    moodle.client.update_users([{"id": user["id"], "city": "Paris"}]).raise_if_aborted()
    drift = run(DriftCheck)
    assert [r["reason"] for r in drift.drifted] == ["changed in Moodle: city"]
    run()
    (user,) = moodle.client.get_users_by_field("idnumber", [key])
    assert user["city"] == "Lyon"
