"""The benchmark against a real Moodle (``MOODLE_URL``, ``MOODLE_TOKEN``).

1. The pushes and the grade pull with the sync core (preset ``real``), as
   against the simulator; no grade items are seeded (Moodle has no web
   service that creates them), so the grade pull reads reports without
   grades.
2. Issue 15's read phases (:mod:`.reads`) on the same site, side by side:
   first without the companion plugin (the client is told the token's
   service lacks its ``local_openeducat_*`` functions: :class:`CoreOnly`;
   nothing changes on the site, the connector falls back to Moodle's own
   functions as it does where the plugin is absent), then with it, when the
   service holds them. Set up first, untimed: an attendance activity with two
   sessions in every course (web services); with ``BENCH_MOODLE_FIXTURE`` (a
   command, see :class:`Fixture`) also completion criteria in every course,
   half the students complete, and the sessions taken for every student.
   Without it the courses have no criteria and the sessions no records.
3. Moodle's own limit on the same site: the same kinds and numbers of
   records (a second copy of the institution, with other idnumbers) sent
   straight through the client, at the largest batches the form-field limit
   allows, with no sync logic and no mapping table.
4. Everything created is deleted (courses, users, categories).

The run uses an id range and a name tag drawn at random, so every idnumber,
shortname, username and e-mail is new on the site. The token is read from the
environment and never printed or written.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import random
import shlex
import subprocess
import time

from openeducat_moodle.moodle.catalogue import (
    PLUGIN_ATTENDANCE_LOGS,
    PLUGIN_COMPLETIONS,
)
from openeducat_moodle.moodle.client import MoodleClient
from openeducat_moodle.moodle.errors import MoodleError
from openeducat_moodle.sync import accounts, idnumbers

from . import generate, report
from .measure import Meter, machine
from .reads import Completion, attendance_phases, completion_phases
from .run_core import run_phases

STRAIGHT_BATCH = 10_000  # the form-field limit (max_fields) is what bounds it
PLUGIN_FUNCTIONS = (PLUGIN_COMPLETIONS, PLUGIN_ATTENDANCE_LOGS)
FIXTURE_ENV = "BENCH_MOODLE_FIXTURE"
# Issue 15: the plugin's completion read at Moodle 4.5's pace.
TARGET_PLUGIN_COMPLETION_S = 60.0


class CoreOnly(MoodleClient):
    """The client of a site without the companion plugin: the token's
    functions as Moodle lists them, less ``local_openeducat_*``. The sync core
    sees the plugin only in that list (``capabilities``), so it reads with
    Moodle's own functions, as where the plugin is not installed."""

    def get_site_info(self):
        info = super().get_site_info()
        info.functions = {
            name: version
            for name, version in info.functions.items()
            if name not in PLUGIN_FUNCTIONS
        }
        return info


class LoadMeter(Meter):
    """A :class:`Meter` that also notes the machine's load average at the end
    of each phase (other work on the machine slows a real Moodle down)."""

    def __init__(self, client_cls, sql_counter=None):
        super().__init__(client_cls, sql_counter)
        self.loads = {}

    @contextlib.contextmanager
    def phase(self, name, minimum=None):
        with super().phase(name, minimum) as phase:
            yield phase
        self.loads[phase.name] = os.getloadavg()


class Fixture:
    """What web services cannot set up on a real Moodle, through a command
    (``BENCH_MOODLE_FIXTURE``, e.g. ``php …/fixture.php --moodledir=…``) to
    which the bench appends, as the contract tests do with
    ``MOODLE_COMPLETION_FIXTURE`` (whose commands these extend to lists):

    * ``criteria --course=ID,ID,…``: completion on, one self-completion
      criterion, aggregation "all", in each course;
    * ``complete --course=ID --user=ID,ID,…``: each user's criterion complete
      now, the course aggregated (one JSON line per user, with
      ``timecompleted``);
    * ``take --session=ID,ID,…``: each attendance session taken, a status for
      every student of its course (one JSON line: ``sessions``, ``records``).

    Each prints JSON lines; the last one ends the answer.
    """

    def __init__(self, command):
        self.argv = shlex.split(command)

    @classmethod
    def from_env(cls):
        command = os.environ.get(FIXTURE_ENV)
        return cls(command) if command else None

    def __call__(self, command, *args):
        done = subprocess.run(
            [*self.argv, command, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(
                f"{FIXTURE_ENV} {command}: exit {done.returncode}: "
                f"{(done.stdout + done.stderr)[-1000:]}"
            )
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def username_for(person):
    """The username the sync core gives a new account (ASCII data)."""
    return accounts.username(person.login or person.email or "")


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def straight_through(meter, client, snapshot):
    """Create the snapshot's objects with plain batch calls; return the ids."""
    created = {}
    with meter.phase("straight-through (Moodle's limit)") as phase:
        cat = {}
        depth = generate.department_depth(snapshot)
        for level in range(max(depth.values()) + 1):
            depts = [d for d in snapshot.departments.values() if depth[d.id] == level]
            _ids(
                client.create_categories(
                    [
                        {
                            "name": d.name,
                            "idnumber": idnumbers.department(d.id),
                            "parent": cat.get(d.parent_id, 0),
                        }
                        for d in depts
                    ]
                ),
                [d.id for d in depts],
                cat,
            )
        created["categories"] = [
            cat[d.id] for d in snapshot.departments.values() if not d.parent_id
        ]
        programs = list(snapshot.programs.values())
        prog = {}
        _ids(
            client.create_categories(
                [
                    {
                        "name": p.name,
                        "idnumber": idnumbers.program(p.id),
                        "parent": cat[p.department_id],
                    }
                    for p in programs
                ]
            ),
            [p.id for p in programs],
            prog,
        )
        pairs = [(p, snapshot.subjects[s]) for p in programs for s in p.subject_ids]
        course = {}
        _ids(
            client.create_courses(
                [
                    {
                        "fullname": f"{s.name} ({p.name})",
                        "shortname": f"{s.code}_{p.code}",
                        "categoryid": prog[p.id],
                        "idnumber": idnumbers.subject_course(s.id, p.id),
                    }
                    for p, s in pairs
                ]
            ),
            [(s.id, p.id) for p, s in pairs],
            course,
        )
        created["courses"] = list(course.values())
        people = [*snapshot.students.values(), *snapshot.faculty.values()]
        user = {}
        _ids(
            client.create_users(
                [
                    {
                        "username": username_for(x),
                        "firstname": x.first_name,
                        "lastname": x.last_name,
                        "email": x.email,
                        "idnumber": (
                            idnumbers.student(x.id)
                            if x.kind == "student"
                            else idnumbers.faculty(x.id)
                        ),
                        "auth": "manual",
                        "createpassword": 1,
                    }
                    for x in people
                ]
            ),
            [(x.kind, x.id) for x in people],
            user,
        )
        created["users"] = list(user.values())
        group_keys, group_records = [], []
        for b in snapshot.batches.values():
            for s in snapshot.programs[b.course_id].subject_ids:
                group_keys.append((b.id, s))
                group_records.append(
                    {
                        "courseid": course[(s, b.course_id)],
                        "name": b.name,
                        "idnumber": idnumbers.batch(b.id),
                        "description": "",
                    }
                )
        group = {}
        _ids(client.create_groups(group_records), group_keys, group)
        enrols, members = [], []
        for e in snapshot.enrolments.values():
            uid = user[("student", e.student_id)]
            for s in e.subject_ids:
                enrols.append(
                    {"roleid": 5, "userid": uid, "courseid": course[(s, e.course_id)]}
                )
                members.append({"groupid": group[(e.batch_id, s)], "userid": uid})
        for f in snapshot.faculty.values():
            for s in f.subject_ids:
                for p in programs:
                    if s in p.subject_ids:
                        enrols.append(
                            {
                                "roleid": 3,
                                "userid": user[("faculty", f.id)],
                                "courseid": course[(s, p.id)],
                            }
                        )
        _ok(client.enrol_users(enrols))
        _ok(client.add_group_members(members))
        phase.summary = (
            f"{len(cat) + len(prog)} categories, {len(course)} courses, "
            f"{len(user)} users, {len(group)} groups, {len(enrols)} enrolments, "
            f"{len(members)} group memberships"
        )
    return phase, created


def _ids(batch, keys, into):
    _ok(batch)
    for key, outcome in zip(keys, batch.outcomes, strict=True):
        into[key] = outcome.value["id"]


def _ok(batch):
    batch.raise_if_aborted()
    if batch.failed:
        raise RuntimeError(
            f"{batch.wsfunction}: {len(batch.failed)} records failed, first: "
            f"{batch.failed[0].error}"
        )


def seed_reads(client, completion, fixture, log, share=0.5, sessions=2, seed=11):
    """Set up what the read phases read (untimed): an attendance activity and
    ``sessions`` sessions a day apart in every course (web services); with a
    :class:`Fixture`, completion criteria in every course, ``share`` of each
    course's students complete, and every session taken.

    :param Completion completion: the enrolments to read (course → students)
    :return: what was set up, for the report
    """
    rng = random.Random(seed)
    started = time.perf_counter()
    courses = sorted(completion.courses)
    start = int(time.time()) - 7 * 86400
    session_ids = []
    for courseid in courses:
        attid = client.add_attendance(courseid, "Attendance")
        for n in range(sessions):
            session_ids.append(
                client.add_attendance_session(attid, start + n * 86400, 3600)
            )
    seeded = {"attendance_activities": len(courses), "sessions": len(session_ids)}
    if fixture is None:
        log(f"  {FIXTURE_ENV} not set: no completion criteria, sessions not taken")
        return seeded
    fixture("criteria", "--course=" + ",".join(map(str, courses)))
    done = 0
    for courseid in courses:
        users = [
            u for _k, _r, u in completion.courses[courseid] if rng.random() < share
        ]
        if users:
            answers = fixture(
                "complete",
                f"--course={courseid}",
                "--user=" + ",".join(map(str, users)),
            )
            done += sum(1 for a in answers if a.get("timecompleted"))
    taken = fixture("take", "--session=" + ",".join(map(str, session_ids)))[-1]
    seeded.update(
        courses_with_criteria=len(courses),
        completed=done,
        attendance_records=taken.get("records", 0),
    )
    log(
        f"  set up for the reads in {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in seeded.items())
    )
    return seeded


def read_phases(meter, client, core, store, log, fixture):
    """Issue 15's read phases on a real Moodle: without the plugin (``core``,
    a :class:`CoreOnly` client), then with it when ``client``'s token has its
    functions. Completion rows and watermark carry over from one to the
    other, as when the plugin is installed on a site already read.

    :return: what was set up and read, for the run's info
    """
    client.capabilities()
    plugin = all(client.has_function(f) for f in PLUGIN_FUNCTIONS)
    completion = Completion(store)
    info = {
        "enrolments": sum(len(s) for s in completion.courses.values()),
        "seeded": seed_reads(client, completion, fixture, log),
    }
    completion_phases(meter, core, completion, log, plugin=False)
    info["completion_incomplete"] = completion.incomplete()
    before = attendance_phases(meter, core, store, log, plugin=False)
    info["attendance_activities"] = before.activities()
    info["plugin"] = plugin
    if not plugin:
        log("  the token's service lacks local_openeducat_*: no plugin phases")
        return info
    completion_phases(meter, client, completion, log, plugin=True)
    after = attendance_phases(meter, client, store, log, plugin=True)
    info["attendance_activities_plugin"] = after.activities()
    return info


def cleanup(client, run_no, log):
    """Delete everything run ``run_no`` created, found by its names.

    Works after a crash too: ``python -m bench --preset real --cleanup N``.
    Courses are deleted a few at a time (Moodle takes seconds per course).
    """
    started = time.perf_counter()
    presets = [_presets(run_no)[0], _presets(run_no)[1]]
    tags = tuple(p.tag for p in presets)
    courses = [
        c["id"]
        for c in client.get_courses_by_field()
        if (c.get("shortname") or "").startswith(tags)
    ]
    for chunk in _chunks(sorted(courses), 5):
        _quietly(log, client.delete_courses, chunk)
    users = []
    for preset in presets:
        snap = generate.build(preset)
        names = [
            username_for(x) for x in (*snap.students.values(), *snap.faculty.values())
        ]
        users += [u["id"] for u in client.get_users_by_field("username", names)]
    for chunk in _chunks(sorted(users), 100):
        _quietly(log, client.delete_users, chunk)
    tops = [
        c["id"]
        for c in client.get_categories()
        if (c.get("name") or "").startswith(tags) and not c.get("parent")
    ]
    if tops:
        _quietly(
            log,
            client.delete_categories,
            [{"id": c, "recursive": 1} for c in sorted(tops)],
        )
    log(
        f"  cleanup of run {run_no}: {len(courses)} courses, {len(users)} users, "
        f"{len(tops)} category trees deleted in {time.perf_counter() - started:.0f} s"
    )


def _quietly(log, method, *args):
    try:
        result = method(*args)
    except MoodleError as err:
        log(f"  cleanup: {err}")
        return
    if hasattr(result, "failed") and (result.failed or result.aborted):
        log(f"  cleanup: {len(result.failed)} failed, aborted: {result.aborted}")


def _presets(run_no):
    base = generate.PRESETS["real"]
    return (
        dataclasses.replace(base, id_base=run_no * 1_000_000, tag=f"bx{run_no}"),
        dataclasses.replace(
            base, id_base=run_no * 1_000_000 + 500_000, tag=f"by{run_no}"
        ),
    )


def main(args, log):
    url, token = os.environ.get("MOODLE_URL"), os.environ.get("MOODLE_TOKEN")
    if not (url and token):
        log("preset real: set MOODLE_URL and MOODLE_TOKEN (a test site)")
        return 2
    slow = MoodleClient(url, token, read_timeout=900)
    if args.cleanup:
        cleanup(slow, args.cleanup, log)
        return 0
    run_no = random.SystemRandom().randint(100, 999)
    preset, twin = _presets(run_no)
    meter = LoadMeter(MoodleClient)
    client = MoodleClient(url, token, batch_size=args.batch_size)
    core = CoreOnly(url, token, batch_size=args.batch_size)
    fixture = Fixture.from_env()
    release = client.get_site_info().release
    info = {"mode": "core", "naive": False, "batch_size": args.batch_size}
    info["moodle"] = f"Moodle {release} at {url}"
    log(f"== real Moodle {release}, run {run_no} (tags {preset.tag}, {twin.tag})")

    def reads(meter, client, store, log):
        return read_phases(meter, client, core, store, log, fixture)

    try:
        run_phases(meter, client, generate.build(preset), info, log=log, reads=reads)
        fast = MoodleClient(url, token, batch_size=STRAIGHT_BATCH)
        straight, _created = straight_through(meter, fast, generate.build(twin))
        log(f"  straight-through: {straight.wall:.1f} s")
        status = _print(args, meter, info, preset, client)
        if args.json:
            _dump(args.json, meter, info, preset)
    finally:
        meter.close()
        try:
            cleanup(slow, run_no, log)
        except MoodleError as err:
            log(f"  cleanup failed ({err}): run --cleanup {run_no} later")
    return status


def _dump(path, meter, info, preset):
    """The raw measurements (``--json``), with the load at each phase's end."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "preset": dataclasses.asdict(preset),
                "info": info,
                "phases": [p.as_dict() for p in meter.phases],
                "loads": meter.loads,
            },
            handle,
            indent=1,
        )


def _print(args, meter, info, preset, client):
    phases, straight = meter.phases[:-1], meter.phases[-1]
    reads = info.get("reads") or {}
    seeded = reads.get("seeded") or {}
    out = [
        (
            "## openeducat_moodle benchmark against a real Moodle, "
            f"{datetime.date.today()}"
        ),
        "",
        f"Machine: {machine()}.  ",
        f"Moodle: {info['moodle']}; connector batch size {args.batch_size}.  ",
        f"Institution: {preset.describe()} (no grade items: see bench/run_real.py).  ",
        "Set up for the reads (not timed): "
        + (", ".join(f"{k} {v:,}" for k, v in seeded.items()) or "nothing")
        + ".",
        "",
        report.summary_table(meter.phases),
        "",
        report.calls_table(meter.phases),
        "",
        "Load average (1, 5, 15 min) at the end of each phase: "
        + "; ".join(
            f"{name} {a:.2f} {b:.2f} {c:.2f}" for name, (a, b, c) in meter.loads.items()
        )
        + ".",
        "",
        report.notes(meter.phases),
        "",
    ]
    if any(name in meter.loads for _r, _a, name in report.PLUGIN_PAIRS):
        out += [
            "Reads without the companion plugin and with it (same site, same run):",
            "",
            report.plugin_table(meter.phases, meter.loads),
            "",
        ]
    rows = report.checks(phases, info)
    ratio = phases[0].wall / straight.wall
    rows.append(
        report.Check(
            "real Moodle: initial push wall ≤ 1.25 × straight-through",
            ratio <= report.TARGET_REAL_RATIO,
            f"{phases[0].wall:.1f} s against {straight.wall:.1f} s straight "
            f"through (ratio {ratio:.2f}); connector batch size "
            f"{args.batch_size}, straight-through batches bounded by "
            f"{client.max_fields} form fields",
            machine=True,
        )
    )
    whole = next(
        (p for p in phases if p.name == "completion, plugin, whole read"), None
    )
    if whole is not None:
        rows.append(
            report.Check(
                f"real Moodle: completion with the plugin ≤ "
                f"{TARGET_PLUGIN_COMPLETION_S:.0f} s",
                whole.wall <= TARGET_PLUGIN_COMPLETION_S,
                f"{whole.wall:.1f} s for the whole read ({whole.moodle_time:.1f} s "
                f"in Moodle) of {reads.get('enrolments', 0):,} student enrolments",
                machine=True,
            )
        )
    out += ["Targets:", "", report.checks_table(rows), ""]
    print("\n".join(out), flush=True)
    judged = [r for r in rows if args.check == "all" or not r.machine]
    if args.check and not all(r.met for r in judged):
        return 1
    return 0
