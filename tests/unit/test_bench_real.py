"""The real-Moodle benchmark's read phases, without and with the companion
plugin (``bench/run_real.py``), run here against the simulator."""

import argparse
import dataclasses
import json

import pytest
import responses

from bench import generate, report, run_real
from bench.run_core import run_phases
from bench.sim import IndexedFakeMoodle
from openeducat_moodle.moodle import MoodleClient
from openeducat_moodle.moodle.catalogue import (
    PLUGIN_ATTENDANCE_LOGS,
    PLUGIN_COMPLETIONS,
)

BASE = "https://moodle.test"
TINY = dataclasses.replace(
    generate.PRESETS["small"],
    name="tiny",
    levels=(1, 1),
    programs=2,
    subjects_per_program=3,
    batches_per_program=1,
    students=12,
    faculty=3,
    subjects_per_student=2,
)


@pytest.fixture
def fm():
    fake = IndexedFakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


def fixture_of(fm):
    """What the PHP fixture does on a real Moodle, on the simulator."""

    def ids(arg):
        return [int(i) for i in arg.split("=", 1)[1].split(",")]

    def run(command, *args):
        if command == "criteria":
            return [
                fm.completion_fixture("criteria", f"--course={c}") for c in ids(args[0])
            ]
        if command == "complete":
            course = args[0]
            return [
                fm.completion_fixture("complete", course, f"--user={u}")
                for u in ids(args[1])
            ]
        assert command == "take"
        records = 0
        for sessionid in ids(args[0]):
            session = fm.attendance_sessions[sessionid]
            attid = session["attendanceid"]
            courseid = fm.attendances[attid]["courseid"]
            status = next(
                s["id"]
                for s in fm.attendance_statuses.values()
                if s["attendanceid"] == attid
            )
            for userid in fm._course_users(courseid, roles={5}):
                logid = fm._next("att_log")
                fm.attendance_logs[logid] = {
                    "id": logid,
                    "sessionid": sessionid,
                    "studentid": userid,
                    "remarks": None,
                    "statusid": status,
                    "statusset": "",
                    "timetaken": session["sessdate"] + 3600,
                    "takenby": fm.ws_userid,
                }
                records += 1
            session.update(
                lasttaken=session["sessdate"] + 3600, lasttakenby=fm.ws_userid
            )
        return [{"sessions": len(ids(args[0])), "records": records}]

    return run


def run(fm, fixture):
    fm.install_plugin()
    meter = run_real.LoadMeter(MoodleClient)
    try:
        client = MoodleClient(BASE, "simtoken")
        core = run_real.CoreOnly(BASE, "simtoken")
        info = {}

        def reads(meter, client, store, log):
            return run_real.read_phases(meter, client, core, store, log, fixture)

        run_phases(
            meter, client, generate.build(TINY), info, log=lambda _t: None, reads=reads
        )
    finally:
        meter.close()
    return {p.name: p for p in meter.phases}, info, meter


def test_core_only_hides_the_plugin_functions(fm):
    fm.install_plugin()
    seen = MoodleClient(BASE, "simtoken")
    seen.capabilities()
    hidden = run_real.CoreOnly(BASE, "simtoken")
    caps = hidden.capabilities()
    assert seen.has_function(PLUGIN_COMPLETIONS)
    assert not hidden.has_function(PLUGIN_COMPLETIONS)
    assert not hidden.has_function(PLUGIN_ATTENDANCE_LOGS)
    assert caps.available["completion"] and caps.available["attendance"]


def test_read_phases_without_and_with_the_plugin_side_by_side(fm):
    phases, info, meter = run(fm, fixture_of(fm))
    reads = info["reads"]
    enrolments = TINY.student_enrolments
    assert reads["enrolments"] == enrolments
    seeded = reads["seeded"]
    assert seeded["courses_with_criteria"] == TINY.courses
    assert 0 < seeded["completed"] < enrolments
    assert seeded["attendance_records"] == 2 * enrolments
    # without the plugin: Moodle's own functions, one status call per student
    first = phases["completion pull"]
    assert first.calls["core_completion_get_course_completion_status"] == enrolments
    assert PLUGIN_COMPLETIONS not in first.calls
    sweep = phases["completion sweep, a day later"]
    assert (
        sweep.calls["core_completion_get_course_completion_status"]
        == enrolments - seeded["completed"]
    )
    assert (
        phases["attendance pull"].calls["mod_attendance_get_sessions"] == TINY.courses
    )
    assert PLUGIN_ATTENDANCE_LOGS not in phases["attendance, nothing new"].calls
    # with it: a page or two
    whole = phases["completion, plugin, whole read"]
    assert set(whole.calls) == {"core_webservice_get_site_info", PLUGIN_COMPLETIONS}
    assert whole.calls[PLUGIN_COMPLETIONS] == 1
    assert phases["attendance pull, plugin"].calls[PLUGIN_ATTENDANCE_LOGS] == 1
    table = report.plugin_table(list(phases.values()), meter.loads)
    assert f"| completion, first run | {first.wall:.1f} | {whole.wall:.1f} |" in table
    assert f"| {enrolments + 1:,} | 2 |" in table
    assert len(table.splitlines()) == 2 + len(report.PLUGIN_PAIRS)
    assert set(meter.loads) == set(phases)


def test_without_a_fixture_only_attendance_is_set_up(fm):
    phases, info, _meter = run(fm, None)
    seeded = info["reads"]["seeded"]
    assert seeded == {
        "attendance_activities": TINY.courses,
        "sessions": 2 * TINY.courses,
    }
    # no criteria: one status call per course, then the course is known
    first = phases["completion pull"]
    assert first.calls["core_completion_get_course_completion_status"] == TINY.courses


def test_the_report_sets_them_side_by_side_and_dumps_them(fm, capsys, tmp_path):
    _phases, info, meter = run(fm, fixture_of(fm))
    with meter.phase("straight-through (Moodle's limit)") as straight:
        straight.wall = 1.0
    info["moodle"] = "the simulator"
    args = argparse.Namespace(batch_size=100, check="counts", json=None)
    status = run_real._print(args, meter, info, TINY, MoodleClient(BASE, "simtoken"))
    out = capsys.readouterr().out
    assert "Reads without the companion plugin and with it" in out
    assert "| completion, first run |" in out
    assert "real Moodle: completion with the plugin ≤ 60 s" in out
    assert "Load average (1, 5, 15 min) at the end of each phase: initial" in out
    assert status == 0  # the counts are met; time targets not judged
    run_real._dump(tmp_path / "raw.json", meter, info, TINY)
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert raw["info"]["reads"]["enrolments"] == TINY.student_enrolments
    assert set(raw["loads"]) == {p["name"] for p in raw["phases"]}
