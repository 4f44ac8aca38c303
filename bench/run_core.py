"""The sync core alone (no Odoo) against the simulator, phase by phase."""

import collections
import os
import pathlib
import subprocess
import sys

import requests

from openeducat_moodle.moodle.client import MoodleClient
from openeducat_moodle.sync.grades import convert, grade_hash, gradebook_rows
from openeducat_moodle.sync.pull import GradeFetcher
from openeducat_moodle.sync.push import UNCHANGED, UPDATE, PushSettings, PushSync
from openeducat_moodle.sync.store import MemoryStore

from . import generate
from .measure import Meter
from .reads import run_read_phases

ROOT = pathlib.Path(__file__).resolve().parent.parent
SIM_TOKEN = "benchtoken"


class Simulator:
    """The simulator in its own process, so that the measured process holds
    the connector only. ``with Simulator(latency) as sim: sim.url``."""

    def __init__(self, latency=0.0, python=None, speed="instant"):
        self.latency = latency
        self.speed = speed
        self.python = python or sys.executable
        self.token = SIM_TOKEN
        self.proc = None
        self.url = None

    def __enter__(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [
                self.python,
                "-m",
                "bench.sim",
                "--token",
                self.token,
                "--latency",
                str(self.latency),
                "--moodle-speed",
                self.speed,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        return self

    def control(self, op, **args):
        """Set-up and statistics outside the web services (not counted)."""
        response = requests.post(f"{self.url}/bench/{op}", json=args, timeout=3600)
        response.raise_for_status()
        return response.json()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NaivePushSync(PushSync):
    """A simple connector: every mapped record is sent again, every run."""

    def plan(self, item):
        action, reason = super().plan(item)
        if action == UNCHANGED:
            return UPDATE, None
        return action, reason


def _summary(result):
    parts = []
    for name, p in result.phases.items():
        bits = [
            f"{v} {k}"
            for k, v in (
                ("created", p.created),
                ("updated", p.updated),
                ("adopted", p.adopted),
                ("unchanged", p.unchanged),
                ("unenrolled", p.unenrolled),
                ("failed", p.failed),
                ("blocked", p.blocked),
            )
            if v
        ]
        parts.append(f"{name}: {', '.join(bits) or 'nothing'}")
    return "; ".join(parts)


def _failures(result):
    return sum(p.failed + p.blocked for p in result.phases.values())


class CoreGradePull:
    """What the pull does without Odoo: fetch, hash-compare, convert.

    Mirrors ``SyncGrades``'s core steps over the in-memory mapping table:
    gradebook per course (naive: per student), one hash per grade, and a
    conversion for each grade that changed.
    """

    def __init__(self, client, store, naive=False):
        self.client = client
        self.store = store
        self.naive = naive
        self.hashes = {}

    def _maps(self):
        users = {
            m.moodle_id: key
            for key, m in self.store.of_kind("user").items()
            if m.moodle_id and key.startswith("oec_student_")
        }
        courses = {
            m.moodle_id: key
            for key, m in self.store.of_kind("course").items()
            if m.moodle_id
        }
        by_key = {v: k for k, v in courses.items()}
        ids = {v: k for k, v in users.items()}
        students = collections.defaultdict(list)
        for key, m in self.store.of_kind("enrolment").items():
            if m.res_model != "op.student.course":
                continue
            user_key, course_key = key.split("@", 1)
            if course_key in by_key and user_key in ids:
                students[by_key[course_key]].append(ids[user_key])
        return users, courses, students

    def _courses(self, courses, students):
        if not self.naive:
            yield from GradeFetcher(self.client).fetch(sorted(courses), students)
            return
        for courseid in sorted(courses):
            rows = []
            for userid in students.get(courseid, []):
                rows += gradebook_rows(self.client.get_grade_items(courseid, userid))
            yield _Course(courseid, rows)

    def run(self):
        users, courses, students = self._maps()
        counts = collections.Counter()
        for course in self._courses(courses, students):
            counts["courses"] += 1
            if getattr(course, "error", None):
                counts["failed courses"] += 1
                continue
            for row in course.rows:
                student = users.get(row.userid)
                if student is None:
                    counts["unmapped"] += 1
                    continue
                key = f"{student}@{courses[row.courseid]}#{row.item_key}"
                digest = grade_hash(row.raw, row.grademax)
                if self.hashes.get(key) == digest:
                    counts["unchanged"] += 1
                    continue
                convert(row.raw, row.grademax, row.grademin)
                counts["updated" if key in self.hashes else "created"] += 1
                self.hashes[key] = digest
        return counts


class _Course:
    def __init__(self, courseid, rows):
        self.courseid = courseid
        self.rows = rows
        self.error = None


def core_completion_pull(client, store):
    """What ``SyncCompletion`` does, without Odoo: one status call per student
    enrolment (Moodle has no bulk form), one per course without criteria."""
    ids = {}
    for kind in ("user", "course"):
        ids.update({(kind, k): m.moodle_id for k, m in store.of_kind(kind).items()})
    counts = collections.Counter()
    no_criteria = set()
    for key, mapping in store.of_kind("enrolment").items():
        if mapping.res_model != "op.student.course":
            continue
        user_key, course_key = key.split("@", 1)
        userid, courseid = ids.get(("user", user_key)), ids.get(("course", course_key))
        if not (userid and courseid):
            continue
        if courseid in no_criteria:
            counts["no_criteria"] += 1
            continue
        data = client.get_course_completion_status(courseid, userid)
        if data is None:
            no_criteria.add(courseid)
            counts["no_criteria"] += 1
            continue
        status = "complete" if data.get("completed") else "incomplete"
        mapping.extra["completion"] = status
        counts[status] += 1
    return counts


def seed_learning(sim, preset, grade_share=1.0):
    """Grade items, grades and completion in every course (set-up, untimed)."""
    grades = sim.control(
        "seed_grades", items_per_course=preset.grade_items, graded=grade_share
    )
    completion = sim.control("seed_completion")
    return {**grades, **completion}


def run(
    preset,
    batch_size=100,
    latency=0.0,
    naive=False,
    log=print,
    grade_share=1.0,
    speed="instant",
):
    """Run the five phases with the sync core against the simulator;
    return ``(phases, info)``."""
    meter = Meter(MoodleClient)
    info = {"mode": "core", "naive": naive, "batch_size": batch_size}
    try:
        with Simulator(latency, speed=speed) as sim:
            info["moodle"] = _described(sim, latency, speed)
            client = MoodleClient(sim.url, sim.token, batch_size=batch_size)

            def seed():
                return seed_learning(sim, preset, grade_share)

            def reads(meter, client, store, log):
                return run_read_phases(meter, client, store, log, sim)

            store = run_phases(
                meter,
                client,
                generate.build(preset),
                info,
                naive,
                log,
                seed,
                reads=None if naive else reads,
            )
            info["simulator"] = sim.control("stats")
    finally:
        meter.close()
    info["mappings"] = len(store.rows)
    return meter.phases, info


def _described(sim, latency, speed):
    text = f"simulator at {sim.url} (latency {latency} s per call"
    if speed != "instant":
        text += f"; Moodle's pace per record: {speed}"
    return text + ")"


def _logged(log, phase):
    log(f"  {phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")


def run_phases(
    meter, client, snapshot, info, naive=False, log=print, seed=None, reads=None
):
    """The five phases against any Moodle; returns the mapping store.

    :param reads: ``reads(meter, client, store, log)``, issue 15's read
        phases (:mod:`.reads`, the simulator only), run instead of the plain
        completion pull
    """
    batch_size = client.batch_size
    store = MemoryStore()
    push = NaivePushSync if naive else PushSync
    minimum = generate.minimum_push(snapshot, batch_size)
    with meter.phase("initial full push", minimum) as phase:
        result = push(client, store, PushSettings()).run(snapshot)
        phase.summary = _summary(result)
    _check_push(phase, result)
    _logged(log, phase)
    with meter.phase("no-change full push", {}) as phase:
        result = push(client, store, PushSettings()).run(snapshot)
        phase.summary = _summary(result)
    _check_push(phase, result)
    _logged(log, phase)
    changed_snapshot, changed = generate.change_one_percent(snapshot)
    minimum = generate.minimum_push(changed_snapshot, batch_size, changed)
    with meter.phase("1%-changed push", minimum) as phase:
        result = push(client, store, PushSettings()).run(changed_snapshot)
        phase.summary = _summary(result)
    phase.notes.append(
        "changed: " + ", ".join(f"{len(v)} {k}" for k, v in changed.items())
    )
    _check_push(phase, result)
    _logged(log, phase)
    if seed:
        info["seeded"] = seed()
    courses = len(store.of_kind("course"))
    pull = CoreGradePull(client, store, naive=naive)
    with meter.phase(
        "grade pull (all courses)", {"gradereport_user_get_grade_items": courses}
    ) as phase:
        counts = pull.run()
        phase.summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    _logged(log, phase)
    if reads is not None:
        info["reads"] = reads(meter, client, store, log)
        return store
    enrols = sum(
        1
        for m in store.of_kind("enrolment").values()
        if m.res_model == "op.student.course"
    )
    with meter.phase(
        "completion pull",
        {"core_completion_get_course_completion_status": enrols},
    ) as phase:
        counts = core_completion_pull(client, store)
        phase.summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    _logged(log, phase)
    return store


def _check_push(phase, result):
    bad = _failures(result)
    if bad:
        phase.notes.append(f"{bad} records failed or blocked")
        for p in result.phases.values():
            for rec in p.records[:3]:
                if rec["action"] in ("failed", "blocked"):
                    phase.notes.append(f"{rec['key']}: {rec['reason']}")
