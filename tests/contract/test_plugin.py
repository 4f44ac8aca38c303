"""The companion Moodle plugin ``local_openeducat`` (folder ``local_openeducat/``).

Two kinds of test:

* the plugin's copy of the connector's catalogue (``classes/local/catalogue.php``:
  the functions of its service and the capabilities its set-up grants) is the
  catalogue: checked here without any Moodle;
* its bulk read functions, ``local_openeducat_get_course_completions`` and
  ``local_openeducat_get_attendance_logs``, on a real Moodle with the plugin
  installed and the functions in the token's service, against Moodle's own
  functions for the same data.

The ``sim`` half runs the simulator's copy of the plugin
(``tests/fake_moodle/fn_plugin.py``), the real half proves it. A real site
without the plugin in the token's service skips.

Course completion criteria cannot be set through web services. The tests that
need them run a PHP fixture on the Moodle's machine, named by
``MOODLE_COMPLETION_FIXTURE`` (a command; the tests append ``criteria
--course=ID``, ``complete --course=ID --user=ID [--time=T] [--no-aggregate]`` or
``aggregate --course=ID --user=ID``; it prints one JSON line), and are skipped
without it (on the simulator, its own powers stand in). Attendance needs
only web services.
"""

import json
import os
import pathlib
import re
import shlex
import subprocess
import time

import pytest

from openeducat_moodle.moodle import FUNCTIONS, MoodleError

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "local_openeducat"
PREFIX = "local_openeducat_"
COMPLETIONS = "local_openeducat_get_course_completions"
LOGS = "local_openeducat_get_attendance_logs"
FIXTURE_ENV = "MOODLE_COMPLETION_FIXTURE"
MAX_PERPAGE = 5000


# ---------------------------------------------------------------------------
# The plugin's copy of the catalogue (no Moodle needed)
# ---------------------------------------------------------------------------


def _php_functions(const):
    """``{name: (feature, legacy, capabilities)}`` of a constant of catalogue.php."""
    text = (PLUGIN / "classes" / "local" / "catalogue.php").read_text()
    match = re.search(rf"public const {const} = \[\n(.*?)\n    \];", text, re.DOTALL)
    assert match, f"{const} not found in catalogue.php"
    entries = re.findall(
        r"'(\w+)' => \['(\w+)', '(\w*)', \[(.*?)\]\],", match.group(1), re.DOTALL
    )
    return {
        name: (feature, legacy, tuple(re.findall(r"'([^']+)'", caps)))
        for name, feature, legacy, caps in entries
    }


def _python_functions(own):
    return {
        f.name: (f.feature, f.legacy or "", tuple(f.capabilities or ()))
        for f in FUNCTIONS.values()
        if f.name.startswith(PREFIX) == own
    }


def _php_entries(functions):
    """The PHP text of catalogue.php's CORE_FUNCTIONS for these functions."""
    lines = []
    for name, (feature, legacy, capabilities) in functions.items():
        caps = [f"'{c}'" for c in capabilities]
        one = f"        '{name}' => ['{feature}', '{legacy}', [{', '.join(caps)}]],"
        if len(one) <= 110:
            lines.append(one)
            continue
        lines.append(f"        '{name}' => ['{feature}', '{legacy}', [")
        line = "           "
        for cap in caps:
            if len(line) + len(cap) + 2 > 110:
                lines.append(line.rstrip())
                line = "           "
            line += f" {cap},"
        lines += [line, "        ]],"]
    return "\n".join(lines)


def test_plugin_catalogue_is_the_connector_s():
    # The service holds these functions and the set-up grants their
    # capabilities: a function or capability added to the catalogue must be
    # added to the plugin (and its version raised).
    expected = _python_functions(own=False)

    assert _php_functions("CORE_FUNCTIONS") == expected, (
        "local_openeducat/classes/local/catalogue.php differs from the catalogue; "
        "its CORE_FUNCTIONS should read:\n" + _php_entries(expected)
    )


def test_plugin_functions_are_declared_with_their_capabilities():
    own = _php_functions("OWN_FUNCTIONS")
    services = (PLUGIN / "db" / "services.php").read_text()
    declared = re.findall(
        r"^    '(local_openeducat_\w+)' => \[", services, re.MULTILINE
    )

    assert set(own) == {COMPLETIONS, LOGS} == set(declared)
    for name, (_feature, legacy, capabilities) in own.items():
        assert legacy == "" and "moodle/course:view" in capabilities, name
    # once the catalogue lists them, it must agree with the plugin
    for name, entry in _python_functions(own=True).items():
        assert own.get(name) == entry, name


# ---------------------------------------------------------------------------
# A real Moodle with the plugin
# ---------------------------------------------------------------------------


@pytest.fixture
def plugin(moodle, monkeypatch):
    """The site, when its token can call the plugin's functions (the
    simulator's copy of the plugin installed; its own powers stand in for the
    completion fixture)."""
    if not moodle.real:
        moodle.fm.install_plugin()
        monkeypatch.setitem(globals(), "_fixture", moodle.fm.completion_fixture)
    functions = moodle.client.get_site_info().functions
    missing = [name for name in (COMPLETIONS, LOGS) if name not in functions]
    if missing:
        pytest.skip(f"local_openeducat not in the token's service: {missing}")
    return moodle


def _completions(site, courseids, **params):
    return site.client.call(COMPLETIONS, courseids=list(courseids), **params)


def _all_pages(site, function, perpage, **params):
    """Every row of every page, and the pages' answers."""
    rows, answers, page = [], [], 0
    key = "completions" if function == COMPLETIONS else "logs"
    while True:
        answer = site.client.call(function, page=page, perpage=perpage, **params)
        answers.append(answer)
        assert answer["page"] == page and answer["perpage"] == perpage
        assert len(answer[key]) <= perpage
        rows += answer[key]
        if not answer["hasmore"]:
            return rows, answers
        assert len(answer[key]) == perpage
        page += 1
        assert page < 50, "paging does not end"


def _next_second():
    """Wait until the server clock has moved on (times are whole seconds)."""
    time.sleep(1.1)


def _errorcode(call):
    with pytest.raises(MoodleError) as caught:
        call()
    return caught.value.errorcode


# ------------------------------------------------------------- completion


def test_completions_course_without_criteria_is_one_row(plugin):
    course = plugin.new_course(enablecompletion=1)
    for _ in range(2):
        plugin.enrol(course["id"], plugin.new_user()["id"])

    answer = _completions(plugin, [course["id"]])
    later = _completions(plugin, [course["id"]], since=answer["timenow"] + 3600)

    row = {
        "courseid": course["id"],
        "userid": 0,
        "hascriteria": False,
        "completed": False,
        "timecompleted": None,
    }
    assert answer["completions"] == [row]
    assert answer["hasmore"] is False and answer["warnings"] == []
    assert answer["allrows"] is True
    assert isinstance(answer["timenow"], int) and answer["timenow"] > 0
    # whatever "since": it says the course has nothing to read
    assert later["completions"] == [row]
    assert later["allrows"] is False
    # and Moodle's own function agrees
    status = plugin.client.get_course_completion_status(
        course["id"], plugin.enrolled(course["id"]).popitem()[0]
    )
    assert status is None


def test_completions_of_unknown_courses_are_warnings(plugin):
    course = plugin.new_course()

    answer = _completions(plugin, [course["id"], 987654321])

    assert [r["courseid"] for r in answer["completions"]] == [course["id"]]
    assert [(w["item"], w["itemid"]) for w in answer["warnings"]] == [
        ("course", 987654321)
    ]


def test_completions_with_no_course_is_empty(plugin):
    answer = _completions(plugin, [])

    assert answer["completions"] == [] and answer["hasmore"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"perpage": 0},
        {"perpage": MAX_PERPAGE + 1},
        {"page": -1},
        {"since": -5},
    ],
    ids=["perpage-0", "perpage-too-large", "page-negative", "since-negative"],
)
def test_completions_refuse_bad_paging(plugin, params):
    course = plugin.new_course()

    code = _errorcode(lambda: _completions(plugin, [course["id"]], **params))

    assert code == "invalidparameter"


def _fixture(*args):
    command = os.environ.get(FIXTURE_ENV)
    if not command:
        pytest.skip(
            f"completion criteria cannot be set through web services "
            f"(set {FIXTURE_ENV})"
        )
    done = subprocess.run(
        shlex.split(command) + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def tracked(plugin):
    """A course with a self-completion criterion, two students and a teacher."""
    course = plugin.new_course(enablecompletion=1)
    students = [plugin.new_user(), plugin.new_user()]
    teacher = plugin.new_user()
    for student in students:
        plugin.enrol(course["id"], student["id"], "student")
    plugin.enrol(course["id"], teacher["id"], "editingteacher")
    _fixture("criteria", f"--course={course['id']}")
    return course, [s["id"] for s in students], teacher["id"]


def _by_user(answer):
    return {row["userid"]: row for row in answer["completions"]}


def test_completions_list_tracked_users_as_core_does(plugin, tracked):
    course, (done, todo), teacher = tracked
    finished = _fixture("complete", f"--course={course['id']}", f"--user={done}")

    rows = _by_user(_completions(plugin, [course["id"]]))

    # students only, like core (a teacher is "usernotenroled" there)
    assert sorted(rows) == sorted([done, todo])
    assert teacher not in rows
    assert rows[done] == {
        "courseid": course["id"],
        "userid": done,
        "hascriteria": True,
        "completed": True,
        "timecompleted": int(finished["timecompleted"]),
    }
    assert rows[todo]["completed"] is False
    assert rows[todo]["timecompleted"] is None
    for userid in (done, todo):
        status = plugin.client.get_course_completion_status(course["id"], userid)
        assert status["completed"] is rows[userid]["completed"], userid


def test_completions_since_lists_only_what_changed(plugin, tracked):
    course, (first, second), _teacher = tracked
    _fixture("complete", f"--course={course['id']}", f"--user={first}")
    _next_second()
    mark = _completions(plugin, [course["id"]])["timenow"]
    _next_second()

    nothing = _completions(plugin, [course["id"]], since=mark)
    # completed now, dated a day back (as a date or duration criterion is)
    _fixture(
        "complete",
        f"--course={course['id']}",
        f"--user={second}",
        f"--time={mark - 86400}",
    )
    changed = _completions(plugin, [course["id"]], since=mark)

    assert nothing["completions"] == [] and nothing["allrows"] is False
    assert [r["userid"] for r in changed["completions"]] == [second]
    assert changed["completions"][0]["completed"] is True
    assert changed["completions"][0]["timecompleted"] == mark - 86400


def test_completions_since_sees_a_late_aggregation(plugin, tracked):
    # The criterion is met before a run, the course is marked complete (by
    # cron) after it, with the criterion's earlier time: the next run still
    # sees it.
    course, (student, _other), _teacher = tracked
    _next_second()
    before = _completions(plugin, [course["id"]])["timenow"]
    _next_second()
    pending = _fixture(
        "complete", f"--course={course['id']}", f"--user={student}", "--no-aggregate"
    )
    _next_second()
    first_run = _completions(plugin, [course["id"]], since=before)
    if first_run["completions"] and first_run["completions"][0]["completed"]:
        pytest.skip("the site's cron aggregated the completion before the test did")
    _next_second()
    aggregated = _fixture("aggregate", f"--course={course['id']}", f"--user={student}")
    second_run = _completions(plugin, [course["id"]], since=first_run["timenow"])

    assert pending["timecompleted"] is None
    # a criterion met since: listed, not yet complete
    assert [(r["userid"], r["completed"]) for r in first_run["completions"]] == [
        (student, False)
    ]
    assert int(aggregated["timecompleted"]) < first_run["timenow"]
    assert [(r["userid"], r["completed"]) for r in second_run["completions"]] == [
        (student, True)
    ]


def test_completions_pages_follow_course_then_user(plugin, tracked):
    course, students, _teacher = tracked
    plain = plugin.new_course()
    courseids = sorted([course["id"], plain["id"]])
    whole = _completions(plugin, courseids)["completions"]

    rows, answers = _all_pages(plugin, COMPLETIONS, 1, courseids=courseids)

    assert rows == whole
    assert len(rows) == 3 and len(answers) == 3
    assert [(r["courseid"], r["userid"]) for r in rows] == sorted(
        [(course["id"], s) for s in students] + [(plain["id"], 0)]
    )
    beyond = _completions(plugin, courseids, page=5, perpage=1)
    assert beyond["completions"] == [] and beyond["hasmore"] is False


# ------------------------------------------------------------- attendance


@pytest.fixture
def register(plugin):
    """A course with an attendance activity, two sessions and two students.

    Both students are marked in the first session (present, absent), the
    first one also in the second session (late).
    """
    functions = plugin.client.get_site_info().functions
    if "mod_attendance_add_attendance" not in functions:
        pytest.skip("mod_attendance_add_attendance not in the token's service")
    client = plugin.client
    course = plugin.new_course()
    students = [plugin.new_user()["id"], plugin.new_user()["id"]]
    for student in students:
        plugin.enrol(course["id"], student)
    attendanceid = client.add_attendance(course["id"], plugin.name("att"))
    start = int(time.time()) - 7 * 86400
    sessions = [
        client.add_attendance_session(attendanceid, start, 3600),
        client.add_attendance_session(attendanceid, start + 86400, 5400),
    ]
    statuses = {
        s["acronym"]: int(s["id"])
        for s in client.get_attendance_session(sessions[0])["statuses"]
    }
    statusset = ",".join(str(i) for i in statuses.values())
    me = client.get_site_info().userid
    marks = [
        (sessions[0], students[0], "P"),
        (sessions[0], students[1], "A"),
        (sessions[1], students[0], "L"),
    ]
    for sessionid, student, acronym in marks:
        client.update_attendance_status(
            sessionid, student, statuses[acronym], statusset, me
        )
    return {
        "course": course,
        "attendanceid": attendanceid,
        "sessions": sessions,
        "students": students,
        "statuses": statuses,
        "statusset": statusset,
        "me": me,
        "start": start,
        "marks": marks,
    }


def _logs(site, **params):
    return site.client.call(LOGS, **params)


def test_attendance_logs_of_an_activity(plugin, register):
    answer = _logs(plugin, attendanceids=[register["attendanceid"]])

    logs = answer["logs"]
    assert answer["hasmore"] is False and answer["warnings"] == []
    assert [(r["sessionid"], r["studentid"], r["statusacronym"]) for r in logs] == [
        (s, u, a) for s, u, a in register["marks"]
    ]
    assert [r["id"] for r in logs] == sorted(r["id"] for r in logs)
    durations = {register["sessions"][0]: 3600, register["sessions"][1]: 5400}
    for row in logs:
        assert row["courseid"] == register["course"]["id"]
        assert row["attendanceid"] == register["attendanceid"]
        assert row["statusid"] == register["statuses"][row["statusacronym"]]
        assert row["takenby"] == register["me"]
        assert row["groupid"] == 0
        assert row["duration"] == durations[row["sessionid"]]
        assert row["sessdate"] in (register["start"], register["start"] + 86400)
        assert row["timetaken"] >= answer["timenow"] - 600
        assert row["lasttaken"] >= row["timetaken"]
        assert row["remarks"] is None


def test_attendance_logs_agree_with_mod_attendance(plugin, register):
    logs = _logs(plugin, attendanceids=[register["attendanceid"]])["logs"]

    ours = {(r["sessionid"], r["studentid"], r["statusid"], r["id"]) for r in logs}
    theirs = set()
    for sessionid in register["sessions"]:
        session = plugin.client.get_attendance_session(sessionid)
        for log in session["attendance_log"]:
            theirs.add(
                (sessionid, int(log["studentid"]), int(log["statusid"]), int(log["id"]))
            )
    assert ours == theirs


def test_attendance_logs_by_course(plugin, register):
    other = plugin.new_course()

    by_course = _logs(plugin, courseids=[register["course"]["id"], other["id"]])
    by_activity = _logs(plugin, attendanceids=[register["attendanceid"]])

    assert by_course["logs"] == by_activity["logs"]
    assert by_course["warnings"] == []


def test_attendance_logs_since(plugin, register):
    client = plugin.client
    _next_second()
    mark = _logs(plugin, attendanceids=[register["attendanceid"]])["timenow"]
    _next_second()
    nothing = _logs(plugin, attendanceids=[register["attendanceid"]], since=mark)
    first, second = register["sessions"]
    late = register["statuses"]["L"]
    client.update_attendance_status(
        first, register["students"][1], late, register["statusset"], register["me"]
    )

    changed = _logs(plugin, attendanceids=[register["attendanceid"]], since=mark)

    assert nothing["logs"] == []
    # the register of the first session was taken again: its records are listed
    # (the one changed and the one unchanged), the second session's are not
    rows = {(r["sessionid"], r["studentid"]): r for r in changed["logs"]}
    assert set(rows) == {
        (first, register["students"][0]),
        (first, register["students"][1]),
    }
    updated = rows[first, register["students"][1]]
    assert updated["statusid"] == late and updated["statusacronym"] == "L"
    assert updated["timetaken"] >= mark
    assert rows[first, register["students"][0]]["timetaken"] < mark
    assert second not in {r["sessionid"] for r in changed["logs"]}


def test_attendance_logs_pages(plugin, register):
    whole = _logs(plugin, attendanceids=[register["attendanceid"]])["logs"]

    rows, answers = _all_pages(
        plugin, LOGS, 2, attendanceids=[register["attendanceid"]]
    )

    assert rows == whole and len(answers) == 2
    assert [a["hasmore"] for a in answers] == [True, False]


def test_attendance_logs_unknown_ids_are_warnings(plugin, register):
    answer = _logs(
        plugin,
        attendanceids=[register["attendanceid"], 987654321],
        courseids=[987654321],
    )

    warnings = [(w["item"], w["itemid"], w["warningcode"]) for w in answer["warnings"]]
    assert len(answer["logs"]) == len(register["marks"])
    assert sorted(warnings) == [
        ("attendance", 987654321, "invalidattendanceid"),
        ("course", 987654321, "invalidcourseid"),
    ]


def test_attendance_logs_need_activities_or_courses(plugin):
    nothing = _errorcode(lambda: _logs(plugin))
    no_page = _errorcode(lambda: _logs(plugin, courseids=[1], perpage=0))

    assert nothing == no_page == "invalidparameter"


def test_attendance_logs_without_mod_attendance(plugin):
    functions = plugin.client.get_site_info().functions
    if any(name.startswith("mod_attendance_") for name in functions):
        pytest.skip("mod_attendance is installed on this site")

    code = _errorcode(lambda: _logs(plugin, courseids=[1]))

    assert code == "attendancenotinstalled"
