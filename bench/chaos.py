"""The chaos run: the sync core against a Moodle that fails at random.

``python -m bench --preset small --mode core --chaos 0.05 [--seed N]
[--check counts]`` runs one script of jobs twice, each time against a fresh
simulator: once with faults injected at random into the given share of the
web-service calls, once without. It then compares, object for object, what
Moodle holds (categories, courses, users, groups, group members, enrolments
with their roles, attendance activities, sessions and statuses) and what
OpenEduCat's side holds (the mapping table, grades, completion, attendance
lines): nothing may be lost, nothing may be there twice.

The script (see :func:`script`): a full push of the preset, the same push
again, a push after a day of edits (1 % changed), a push after withdrawals,
leavers and new students, then (after grades, completion and attendance are
set up, identically in both runs) a grade pull, a completion pull and an
attendance sync in both directions (:mod:`bench.chaos_attendance`).

A job runs as queue_job runs it. Its writes to the mapping table (and to the
pulls' OpenEduCat records) are one transaction (:class:`JournaledStore`):

* the job ends: committed;
* Moodle failed (``MoodleTransientError``): what it did so far is committed,
  as ``moodle.instance._run`` does, and the job runs again after the
  instance's backoff (:meth:`Run._back_off`: a window of 5 min, 30 min, 4 h,
  24 h, a probe call at its end that lifts it when Moodle answers);
* the worker is killed: nothing the job stored is kept, whatever it did in
  Moodle stays; the job runs again (queue_job requeues a dead worker's job).

A job is run until it is quiet: a run ended without error and nothing waits
for a retry (a push's mapping rows in state ``error``: the clock is moved to
their next attempt, as the retry cron would; a completion or an attendance
course, sheet or line Moodle refused: the next scheduled run). A job that is
not quiet after ``max_runs`` runs did not converge.

Time is simulated (:class:`VirtualClock`): backoffs, retries and outages move
the clock, not the wall; the simulator reads the same clock.

Faults, drawn per call from a seeded RNG (the run is reproducible; the
simulator serves over loopback HTTP in this process, so the client meets real
socket errors):

==============  =============================================================
``drop``        the connection closes before Moodle reads the request
``lost_reply``  Moodle does the work, the connection closes before the answer
``timeout``     Moodle does the work but answers after the client's read
                timeout: the connection is closed and the transport reports
                ``requests.ReadTimeout`` at once (no wall time is spent
                waiting, so the run does not depend on the machine's load)
``http500/502/503``  an error page, nothing done
``http429``     rate limited (Retry-After 2 s), nothing done
``html``        Moodle's HTML error page with status 200, nothing done
``badjson``     a truncated JSON body, nothing done
``dberror``     Moodle's database fails the call (``dmlwriteexception`` on a
                write, ``dmlreadexception`` on a read; a warning per record
                from the functions that update record by record), nothing done
``outage``      Moodle stops: every connection is refused for 1 to 15
                minutes of simulated time (a restart mid-run)
``kill``        the worker dies right after Moodle's answer reaches it
==============  =============================================================

and, per job run, ``kill at commit``: the worker dies after the job's last
Moodle reply, before its commit, with the probability a call has of a
``kill`` (the rate times kill's share of the weights, ``KINDS``).

Only the sync core runs here (``PushSync``, ``GradeFetcher``,
``AttendanceSync``, the client); the pulls' OpenEduCat writes are this
module's stand-ins for ``SyncGrades`` and
``SyncCompletion`` (grade and completion records keyed like theirs, written
course by course and enrolment by enrolment; a failed run's successor resumes
where it stopped, as issue 13 asks of the services).
"""

import collections
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import random
import threading
import time

import requests

from openeducat_moodle.moodle import (
    MoodleAccessError,
    MoodleClient,
    MoodleRecordError,
    MoodleTransientError,
)
from openeducat_moodle.sync.backoff import RETRY_DELAYS
from openeducat_moodle.sync.grades import grade_hash
from openeducat_moodle.sync.pull import GradeFetcher
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.rows import Enrolment, Person
from openeducat_moodle.sync.store import Mapping, MemoryStore
from tests.fake_moodle import FUNCTIONS

from . import chaos_attendance, generate
from .sim import IndexedFakeMoodle, _BenchHandler

SIM_TOKEN = "chaostoken"
DEFAULT_SEED = 20240613
# Relative weights of the per-call faults.
KINDS = {
    "drop": 2,
    "lost_reply": 3,
    "timeout": 1,
    "http500": 1,
    "http502": 1,
    "http503": 1,
    "http429": 1,
    "html": 1,
    "badjson": 1,
    "dberror": 1,
    "outage": 1,
    "kill": 2,
}
# A job run's worker dies between its last reply and its commit with the
# probability of a per-call kill: rate × (kill's share of the weights).
COMMIT_KILL_SHARE = KINDS["kill"] / sum(KINDS.values())
OUTAGE_SECONDS = (60, 900)
# A killed worker's job is requeued after this (queue_job's dead-job check).
REQUEUE_AFTER = datetime.timedelta(minutes=5)
# A pull's records Moodle refused are asked again at its next scheduled run.
NEXT_RUN = datetime.timedelta(minutes=15)
EPOCH = datetime.datetime(2026, 9, 1, 8, 0, 0)
COMPLETED_AT = 1_788_000_000


class WorkerKilled(BaseException):
    """The worker process died: nothing catches this (no ``except Exception``
    in the code under test may turn a kill into a handled failure)."""


class VirtualClock:
    """Simulated time: seconds since the epoch, moved by the driver."""

    def __init__(self, start=EPOCH):
        self.start = start
        self.elapsed = 0.0

    def __call__(self):
        return (self.start - datetime.datetime(1970, 1, 1)).total_seconds() + (
            self.elapsed
        )

    def now(self):
        """The current time, as the sync core takes it (naive UTC)."""
        return self.start + datetime.timedelta(seconds=self.elapsed)

    def advance(self, delta):
        if isinstance(delta, datetime.timedelta):
            delta = delta.total_seconds()
        self.elapsed += max(0.0, delta)

    def move_to(self, when):
        self.advance((when - self.now()).total_seconds())


# --------------------------------------------------------------- the store
class JournaledStore(MemoryStore):
    """The mapping table, with a job's writes as one transaction.

    ``begin()`` opens it; ``commit()`` keeps the writes; ``rollback()`` puts
    back every row the job wrote, as PostgreSQL does for a killed worker.
    Rows are copied in and out whole (``extra`` included), as a database
    does: the code under test never shares an object with the table.
    """

    def __init__(self):
        super().__init__()
        self._journals = []  # the transaction, then its savepoints

    def begin(self):
        self._journals = [{}]

    def _touch(self, key):
        for journal in self._journals:
            if key not in journal:
                journal[key] = self.rows.get(key)

    def commit(self):
        self._journals = []

    def _undo(self, journal):
        for key, row in journal.items():
            if row is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = row

    def rollback(self):
        if self._journals:
            self._undo(self._journals[0])
        self._journals = []

    @contextlib.contextmanager
    def savepoint(self):
        """Undo what the block wrote if it raises (``cr.savepoint()``)."""
        journal = {}
        self._journals.append(journal)
        try:
            yield
        except BaseException:
            self._undo(journal)
            raise
        finally:
            # by identity: an empty savepoint equals an empty transaction
            self._journals = [j for j in self._journals if j is not journal]

    def save_apart(self, mappings):
        """Write in a transaction of its own, committed at once: neither the
        job's rollback nor a savepoint's undoes it."""
        for mapping in mappings:
            key = (mapping.kind, mapping.key)
            self.rows[key] = dataclasses.replace(
                mapping, extra=copy.deepcopy(mapping.extra)
            )
            for journal in self._journals:
                journal.pop(key, None)

    def load(self, kind):
        return {
            key: dataclasses.replace(m, extra=copy.deepcopy(m.extra))
            for (k, key), m in self.rows.items()
            if k == kind
        }

    def save(self, mappings):
        for mapping in mappings:
            key = (mapping.kind, mapping.key)
            self._touch(key)
            self.rows[key] = dataclasses.replace(
                mapping, extra=copy.deepcopy(mapping.extra)
            )

    def delete(self, mappings):
        for mapping in mappings:
            key = (mapping.kind, mapping.key)
            if key in self.rows:
                self._touch(key)
                del self.rows[key]

    def rows_of(self, kind):
        """``{key: row}`` of a kind (read only)."""
        return {key: m for (k, key), m in self.rows.items() if k == kind}

    def synced(self, kind):
        """``{key: row}`` of the synced rows of a kind (read only)."""
        return {
            key: m
            for (k, key), m in self.rows.items()
            if k == kind and m.state == "synced"
        }

    def load_one(self, kind, key):
        row = self.rows[kind, key]
        return dataclasses.replace(row, extra=copy.deepcopy(row.extra))


# ----------------------------------------------------------- the simulator
class ChaosMoodle(IndexedFakeMoodle):
    """The benchmark's simulator, failing ``rate`` of the calls at random."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate = 0.0
        self.rng = random.Random(0)
        self.kinds = dict(KINDS)
        self.kill_pending = False
        self.timeout_pending = False
        self.in_flight = 0
        self.idle = threading.Condition(self._lock)

    def chaos(self, rate, seed, kinds=None):
        self.rate = rate
        self.rng = random.Random(seed)
        if kinds:
            self.kinds = dict(kinds)

    def _take_fault(self, wsfunction):
        fault = super()._take_fault(wsfunction)
        if fault or not self.rate or self.rng.random() >= self.rate:
            return fault
        names = sorted(self.kinds)
        kind = self.rng.choices(names, [self.kinds[n] for n in names])[0]
        if kind == "outage":
            self.outage(self.rng.uniform(*OUTAGE_SECONDS))
            self.fault_counts["outage"] += 1
            return "refused"
        if kind == "kill":
            self.kill_pending = True
            self.fault_counts["kill"] += 1
            return None
        if kind == "timeout":
            # processed, connection closed; the client's transport turns
            # that into the ReadTimeout a late answer gives
            self.timeout_pending = True
            self.fault_counts["timeout"] += 1
            self.fault_counts["lost_reply"] -= 1  # counted by handle()
            return "lost_reply"
        if kind == "dberror":
            write = FUNCTIONS.get(wsfunction) == "write"
            return "dmlwriteexception" if write else "dmlreadexception"
        return kind

    def take_timeout(self):
        with self._lock:
            timeout, self.timeout_pending = self.timeout_pending, False
        return timeout

    def take_kill(self):
        with self._lock:
            kill, self.kill_pending = self.kill_pending, False
        return kill

    def wait_idle(self, timeout=30):
        """Wait until no request is being answered (a late answer included)."""
        with self.idle:
            self.idle.wait_for(lambda: self.in_flight == 0, timeout)


class _ChaosHandler(_BenchHandler):
    def _serve(self, body):
        fm = self.server.fake_moodle
        with fm._lock:
            fm.in_flight += 1
        try:
            super()._serve(body)
        finally:
            with fm.idle:
                fm.in_flight -= 1
                fm.idle.notify_all()


def _serve(fm):
    from tests.fake_moodle.server import _Server

    server = _Server(("127.0.0.1", 0), _ChaosHandler)
    server.fake_moodle = fm
    fm.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Reports the ``timeout`` fault as the ReadTimeout a late answer gives."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim

    def send(self, request, *args, **kwargs):
        try:
            return super().send(request, *args, **kwargs)
        except requests.ConnectionError:
            if self.sim.take_timeout():
                raise requests.ReadTimeout(
                    "Read timed out (simulated: Moodle answered too late)",
                    request=request,
                ) from None
            raise


class ChaosClient(MoodleClient):
    """The connector's client; the worker may die when an answer arrives."""

    def __init__(self, sim, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sim = sim
        self.exchanges = 0
        self.session.mount("http://", _TimeoutAdapter(sim))

    def _exchange(self, name, body, fields):
        self.exchanges += 1
        try:
            return super()._exchange(name, body, fields)
        finally:
            if self.sim.take_kill():
                raise WorkerKilled(name)  # the process is gone


# ------------------------------------------------------------------ the jobs
@dataclasses.dataclass
class JobStats:
    name: str
    runs: int = 0
    failed: int = 0
    killed: int = 0
    killed_at_commit: int = 0
    retry_rounds: int = 0
    simulated: float = 0.0
    converged: bool = False
    errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    last_error: str = ""


class PushJob:
    """``moodle.instance._job_push`` of a full push, in the sync core."""

    def __init__(self, name, snapshot):
        self.name = name
        self.snapshot = snapshot

    def run(self, client, store, clock):
        PushSync(client, store, PushSettings(), now=clock.now()).run(self.snapshot)

    def pending_retry(self, store, clock):
        """The earliest next attempt of a record waiting for one, or None."""
        due = [
            m.next_retry
            for m in store.rows.values()
            if m.state == "error" and m.next_retry is not None
        ]
        return min(due) if due else None


def _cursor(store, name):
    row = store.get("job", name)
    return row.extra.get("cursor") if row else None


def _set_cursor(store, name, value):
    store.save([Mapping("job", name, "bench.job", 0, extra={"cursor": value})])


class GradePullJob:
    """``SyncGrades.pull_all_combined`` (grades), course by course: one grade
    record per student, course and grade item, keyed as the service keys its
    grade mapping rows; a run that stops is resumed at its course."""

    name = "grade pull"

    def run(self, client, store, clock):
        students = {
            m.moodle_id: key
            for key, m in store.synced("user").items()
            if key.startswith("oec_student_")
        }
        courses = {m.moodle_id: key for key, m in store.synced("course").items()}
        by_key = {v: k for k, v in courses.items()}
        ids = {v: k for k, v in students.items()}
        enrolled = collections.defaultdict(list)
        for key, m in store.synced("enrolment").items():
            if m.res_model == "op.student.course":
                user_key, course_key = key.split("@", 1)
                if course_key in by_key and user_key in ids:
                    enrolled[by_key[course_key]].append(ids[user_key])
        order = sorted(courses)
        start = _cursor(store, self.name) or 0
        fetcher = GradeFetcher(client)
        for position, course in enumerate(
            fetcher.fetch(order[start:], enrolled), start
        ):
            if course.error is None:
                self._write(store, course, students, courses[course.courseid])
            _set_cursor(store, self.name, position + 1)
        _set_cursor(store, self.name, None)

    @staticmethod
    def _write(store, course, students, course_key):
        rows = []
        for row in course.rows:
            student = students.get(row.userid)
            if student is None:
                continue
            key = f"{student}@{course_key}#{row.item_key}"
            digest = grade_hash(row.raw, row.grademax)
            mapping = store.get("grade", key)
            if mapping and mapping.sync_hash == digest:
                continue
            rows.append(
                Mapping(
                    "grade",
                    key,
                    "op.exam.attendees",
                    0,
                    idnumber=course_key,
                    sync_hash=digest,
                    state="synced",
                    extra={
                        "raw": row.raw,
                        "grademax": row.grademax,
                        "item": row.item_name,
                        "student": student,
                    },
                )
            )
        store.save(rows)

    def pending_retry(self, store, clock):
        return None


class CompletionPullJob:
    """``SyncCompletion.run``: each student enrolment's completion status
    into its mapping row's ``extra`` (completed ones are not asked again);
    a run that stops is resumed at its enrolment."""

    name = "completion pull"

    def run(self, client, store, clock):
        enrolments = sorted(
            (key, m)
            for key, m in store.synced("enrolment").items()
            if m.res_model == "op.student.course"
        )
        ids = {}
        for kind in ("user", "course"):
            ids.update({(kind, k): m.moodle_id for k, m in store.synced(kind).items()})
        start = _cursor(store, self.name) or 0
        no_criteria = set()
        for position in range(start, len(enrolments)):
            key, mapping = enrolments[position]
            if mapping.extra.get("completion") != "complete":
                status = self._status(client, ids, key, no_criteria)
                if status and any(mapping.extra.get(k) != v for k, v in status.items()):
                    row = store.load_one("enrolment", key)
                    row.extra.update(status)
                    store.save([row])
            _set_cursor(store, self.name, position + 1)
        _set_cursor(store, self.name, None)

    @staticmethod
    def _status(client, ids, key, no_criteria):
        user_key, course_key = key.split("@", 1)
        userid, courseid = ids.get(("user", user_key)), ids.get(("course", course_key))
        if not (userid and courseid):
            return None
        if courseid in no_criteria:
            return {"completion": "no_criteria"}
        try:
            data = client.get_course_completion_status(courseid, userid)
        except MoodleRecordError as err:
            return {"completion": "error", "error": err.errorcode}
        if data is None:
            no_criteria.add(courseid)
            return {"completion": "no_criteria"}
        return {
            "completion": "complete" if data.get("completed") else "incomplete",
            "completed_at": max(
                (c.get("timecompleted") or 0 for c in data.get("completions") or []),
                default=0,
            )
            or None,
        }

    def pending_retry(self, store, clock):
        """Enrolments Moodle refused to tell: asked at the next run."""
        refused = any(
            m.extra.get("completion") == "error"
            for m in store.rows_of("enrolment").values()
        )
        return clock.now() + NEXT_RUN if refused else None


# ---------------------------------------------------------------- the script
def change_people(snapshot):
    """Withdrawals, leavers and new students: every 50th student enrolment
    withdrawn (unenrolled from its courses), every 20th teacher leaves
    (suspended, teaching enrolments removed), ten new students join."""
    enrolments = dict(snapshot.enrolments)
    for eid in sorted(enrolments)[::50]:
        enrolments[eid] = dataclasses.replace(enrolments[eid], active=False)
    faculty = dict(snapshot.faculty)
    for fid in sorted(faculty)[::20]:
        faculty[fid] = dataclasses.replace(faculty[fid], active=False)
    students = dict(snapshot.students)
    programs = sorted(snapshot.programs)
    batches = collections.defaultdict(list)
    for batch in snapshot.batches.values():
        batches[batch.course_id].append(batch.id)
    first = max(max(students), max(enrolments)) + 1
    for n in range(10):
        sid = first + n
        students[sid] = Person(
            sid, "student", f"Newcomer{sid}", "Joined", f"new{sid}@bench.example.edu"
        )
        program = snapshot.programs[programs[n % len(programs)]]
        enrolments[sid] = Enrolment(
            sid,
            sid,
            program.id,
            min(batches[program.id]),
            program.subject_ids[:3],
        )
    return dataclasses.replace(
        snapshot, students=students, faculty=faculty, enrolments=enrolments
    )


def script(preset):
    """The jobs, in order; ``None`` marks where learning data is set up."""
    first = generate.build(preset)
    changed, _ = generate.change_one_percent(first)
    return [
        PushJob("initial full push", first),
        PushJob("no-change full push", first),
        PushJob("1%-changed push", changed),
        PushJob("withdrawals, leavers, newcomers", change_people(changed)),
        None,
        GradePullJob(),
        CompletionPullJob(),
        chaos_attendance.AttendanceJob(),
    ]


def _digest(*parts):
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def seed_learning(fm, items=5):
    """Grade items, grades and completion in every connector course, decided
    by idnumbers only (so both runs get the same, whatever the Moodle ids)."""
    users = {u["id"]: u["idnumber"] for u in fm.users.values() if u["idnumber"]}
    courses = sorted(
        (c["idnumber"], c["id"])
        for c in fm.courses.values()
        if c["idnumber"].startswith("oec_subj_")
    )
    with fm._lock:
        for idnumber, courseid in courses:
            enrolled = fm._course_users(courseid, roles={5})
            students = sorted((users[u], u) for u in enrolled if u in users)
            fm.set_completion_criteria(courseid, (1,))
            for n in range(items):
                item = fm.add_manual_item(courseid, f"Assessment {n + 1}", 100.0)
                for user_idnumber, userid in students:
                    grade = 20 + _digest(idnumber, user_idnumber, n) % 81
                    fm.set_manual_grade(item, userid, grade)
            for user_idnumber, userid in students:
                if _digest(idnumber, user_idnumber) % 2:
                    fm.complete_course(courseid, userid, COMPLETED_AT)


# ---------------------------------------------------------------- the driver
class Run:
    """One run of the script against a fresh simulator."""

    def __init__(self, preset, rate, seed, max_runs, batch_size=100, log=print):
        self.preset = preset
        self.rate = rate
        self.seed = seed
        self.max_runs = max_runs
        self.batch_size = batch_size
        self.log = log
        self.clock = VirtualClock()
        self.rng = random.Random(seed * 7 + 1)
        self.jobs = []
        self.store = JournaledStore()
        self.wall = 0.0
        self.fm = None
        self.calls = 0
        self.final_plan = {}
        self.streak = 0
        self.probes = self.probes_failed = 0

    def execute(self):
        started = time.perf_counter()
        fm = self.fm = ChaosMoodle(token=SIM_TOKEN)
        fm.clock = self.clock
        server = _serve(fm)
        try:
            client = ChaosClient(fm, fm.base_url, SIM_TOKEN, batch_size=self.batch_size)
            fm.chaos(self.rate, self.seed)
            last = None
            for job in script(self.preset):
                if job is None:
                    seed_learning(fm, self.preset.grade_items)
                    chaos_attendance.seed(fm, self.store)
                    continue
                self.jobs.append(self._run_job(job, client))
                last = getattr(job, "snapshot", last)
            self.calls = client.exchanges
            fm.chaos(0.0, self.seed)
            self.final_plan = self._final_plan(client, last)
        finally:
            server.shutdown()
            server.server_close()
        self.wall = time.perf_counter() - started
        return self

    def _final_plan(self, client, snapshot):
        """A dry-run push of the last snapshot, faults off: after a converged
        run it plans nothing (every mapping row's hash is Moodle's state)."""
        result = PushSync(
            client, self.store, PushSettings(), dry_run=True, now=self.clock.now()
        ).run(snapshot)
        fields = ("created", "updated", "unenrolled", "failed", "blocked", "waiting")
        return {f: result.total(f) for f in fields if result.total(f)}

    def _attempt(self, job, client, stats):
        """One run of a job; return the error that stopped it, if any."""
        self.store.begin()
        error = None
        try:
            job.run(client, self.store, self.clock)
        except WorkerKilled:
            self.fm.wait_idle()
            self.store.rollback()
            stats.killed += 1
            self.clock.advance(REQUEUE_AFTER)
            return "killed"
        except (MoodleTransientError, MoodleAccessError) as err:
            error = err
            stats.errors[err.errorcode or type(err).__name__] += 1
            stats.last_error = str(err)
        self.fm.wait_idle()
        if self.rng.random() < self.rate * COMMIT_KILL_SHARE:
            self.store.rollback()  # died between its last reply and the commit
            stats.killed_at_commit += 1
            self.clock.advance(REQUEUE_AFTER)
            return "killed"
        self.store.commit()
        return error

    def _run_job(self, job, client):
        stats = JobStats(job.name)
        started = self.clock.elapsed
        while stats.runs < self.max_runs:
            stats.runs += 1
            error = self._attempt(job, client, stats)
            if error == "killed":
                continue
            if error is not None:
                stats.failed += 1
                self._back_off(client, error)
                continue
            self.streak = 0  # a clean run lifts the backoff
            due = job.pending_retry(self.store, self.clock)
            if due is None:
                stats.converged = True
                break
            stats.retry_rounds += 1
            self.clock.move_to(due)
        stats.simulated = self.clock.elapsed - started
        self.log(
            f"  {job.name}: {stats.runs} runs ({stats.failed} failed, "
            f"{stats.killed + stats.killed_at_commit} killed)"
            + ("" if stats.converged else ": NOT CONVERGED")
        )
        return stats

    def _back_off(self, client, error):
        """The instance's backoff after Moodle failed (``moodle.instance.
        _moodle_note_failure``): a window of 5 min, 30 min, 4 h, then 24 h
        (the Retry-After of a 429 if longer); at its end one probe call
        (``_job_probe``: ``core_webservice_get_site_info``): Moodle answers,
        the backoff is lifted and the job runs; it does not, the next window.
        """
        retry_after = error.retry_after or 0
        while True:
            self.streak += 1
            delay = RETRY_DELAYS[min(self.streak, len(RETRY_DELAYS)) - 1]
            self.clock.advance(max(delay.total_seconds(), retry_after))
            self.probes += 1
            try:
                client.get_site_info()
            except WorkerKilled:
                self.fm.wait_idle()
                self.streak -= 1  # the probe job is requeued, same window
                continue
            except (MoodleTransientError, MoodleAccessError) as err:
                self.probes_failed += 1
                retry_after = err.retry_after or 0
                continue
            self.streak = 0
            return


# ------------------------------------------------------------- comparison
def moodle_state(fm):
    """What Moodle holds, keyed by idnumbers (Moodle ids differ between runs).

    Each value is a list: two objects under one key show as a list of two.
    """
    cats = {c["id"]: c for c in fm.categories.values()}
    courses = {c["id"]: c for c in fm.courses.values()}
    users = {u["id"]: u for u in fm.users.values()}
    groups = {g["id"]: g for g in fm.groups.values()}

    def cat_key(catid):
        cat = cats.get(catid)
        return (cat["idnumber"] or cat["name"]) if cat else catid

    state = collections.defaultdict(lambda: collections.defaultdict(list))
    for cat in cats.values():
        if cat["id"] != 1:
            state["categories"][cat_key(cat["id"])].append(
                (cat["name"], cat_key(cat["parent"]) if cat["parent"] else 0)
            )
    for course in courses.values():
        if course["id"] != 1:
            state["courses"][course["idnumber"] or course["shortname"]].append(
                (course["shortname"], course["fullname"], cat_key(course["categoryid"]))
            )
    for user in users.values():
        if user["id"] > 2 and not user["deleted"]:
            state["users"][user["idnumber"] or user["username"]].append(
                (
                    user["username"],
                    user["firstname"],
                    user["lastname"],
                    user["email"],
                    user["suspended"],
                )
            )

    def user_key(userid):
        user = users.get(userid)
        return (user["idnumber"] or user["username"]) if user else userid

    def course_key(courseid):
        course = courses.get(courseid)
        return (course["idnumber"] or course["shortname"]) if course else courseid

    for group in groups.values():
        key = f"{group['idnumber'] or group['name']}@{course_key(group['courseid'])}"
        state["groups"][key].append(group["name"])
        for userid in sorted(fm.group_memberships.get(group["id"], ())):
            state["group members"][f"{user_key(userid)}@{key}"].append(1)
    for enrolment in fm.enrolments.values():
        key = f"{user_key(enrolment['userid'])}@{course_key(enrolment['courseid'])}"
        state["enrolments"][key].append(tuple(enrolment["roles"]))
    state.update(chaos_attendance.moodle_state(fm, user_key, course_key))
    return state


def oec_state(store, fm):
    """What OpenEduCat's side holds: mapping rows (their Moodle object named
    by its key in :func:`moodle_state`), grades, completion statuses."""
    idnumber = {}
    for table, field in (
        ("categories", "idnumber"),
        ("courses", "idnumber"),
        ("users", "idnumber"),
    ):
        for obj in getattr(fm, table).values():
            idnumber[table, obj["id"]] = obj[field]
    for group in fm.groups.values():
        idnumber["groups", group["id"]] = group["idnumber"]
    tables = {
        "category": "categories",
        "course": "courses",
        "user": "users",
        "group": "groups",
    }
    state = collections.defaultdict(lambda: collections.defaultdict(list))
    for (kind, key), m in store.rows.items():
        if kind in tables or kind == "enrolment":
            target = idnumber.get((tables.get(kind), m.moodle_id), m.moodle_id)
            extra = {k: v for k, v in m.extra.items() if k in ("groupid",)}
            if "groupid" in extra:
                extra["groupid"] = idnumber.get(("groups", extra["groupid"]))
            # the hash holds Moodle ids, which may differ between the runs:
            # the final dry run (Run.final_plan) judges the hashes instead
            state["mapping rows"][f"{kind}:{key}"].append(
                (m.state, target, tuple(sorted(extra.items())))
            )
        if kind == "enrolment" and "completion" in m.extra:
            state["completion"][key].append(
                (m.extra["completion"], m.extra.get("completed_at"))
            )
        if kind == "grade":
            # named by the grade item's name: item ids may differ by run
            name = f"{m.extra['student']}@{m.idnumber}#{m.extra['item']}"
            state["grades"][name].append((m.extra["raw"], m.extra["grademax"]))
    state.update(chaos_attendance.oec_state(store))
    return state


@dataclasses.dataclass
class Difference:
    kind: str
    reference: int = 0
    chaos: int = 0
    lost: int = 0
    twice: int = 0
    extra: int = 0
    changed: int = 0
    examples: list = dataclasses.field(default_factory=list)

    @property
    def ok(self):
        return not (self.lost or self.twice or self.extra or self.changed)


def compare(reference, chaos):
    rows = []
    for kind in sorted(set(reference) | set(chaos)):
        ref, got = reference.get(kind, {}), chaos.get(kind, {})
        diff = Difference(
            kind, sum(map(len, ref.values())), sum(map(len, got.values()))
        )
        for key in sorted(set(ref) | set(got), key=str):
            a, b = ref.get(key, []), got.get(key, [])
            if len(b) > 1 and len(b) > len(a):
                diff.twice += len(b) - max(len(a), 1)
                diff.examples.append(f"twice: {key}")
            elif not b:
                diff.lost += len(a)
                diff.examples.append(f"lost: {key}")
            elif not a:
                diff.extra += len(b)
                diff.examples.append(f"extra: {key}")
            elif sorted(a, key=repr) != sorted(b, key=repr):
                diff.changed += 1
                diff.examples.append(f"differs: {key}: {a[:1]} != {b[:1]}")
        rows.append(diff)
    return rows


# ---------------------------------------------------------------- reporting
def report(preset, rate, seed, chaos, reference, differences):
    faults = collections.Counter(chaos.fm.fault_counts)
    faults["kill at commit"] = sum(j.killed_at_commit for j in chaos.jobs)
    refused = faults.pop("refused", 0)
    out = [
        f"### Chaos run, preset `{preset.name}`, rate {rate}, seed {seed}",
        "",
        f"Institution: {preset.describe()}.  ",
        f"Calls made: {chaos.calls:,} (fault-free run: {reference.calls:,}).  ",
        f"Faults injected: {sum(faults.values()):,} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(faults.items()) if v)
        + f"); {refused:,} requests refused during outages.  ",
        (
            "Backoff probes (one call at the end of each backoff window): "
            f"{chaos.probes:,}, {chaos.probes_failed:,} of them failed.  "
        ),
        (
            f"Wall time: {chaos.wall:.1f} s (fault-free run: {reference.wall:.1f} "
            f"s); simulated time to converge: {_hours(chaos.clock.elapsed)} "
            f"(fault-free run: {_hours(reference.clock.elapsed)})."
        ),
        "",
        (
            "| job | runs | failed (Moodle) | killed | killed at commit "
            "| retry rounds | simulated time | converged | errors met |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for job in chaos.jobs:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(job.errors.items()))
        out.append(
            f"| {job.name} | {job.runs} | {job.failed} | {job.killed} | "
            f"{job.killed_at_commit} | {job.retry_rounds} | "
            f"{_hours(job.simulated)} | "
            f"{'yes' if job.converged else '**no**'} | {errors or '–'} |"
        )
    out += [
        "",
        "| compared | fault-free | chaos | lost | twice | extra | differ |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for d in differences:
        out.append(
            f"| {d.kind} | {d.reference:,} | {d.chaos:,} | {d.lost} | {d.twice} | "
            f"{d.extra} | {d.changed} |"
        )
    plan = ", ".join(f"{v} {k}" for k, v in chaos.final_plan.items())
    out += [
        "",
        "A dry-run push of the last snapshot afterwards plans: "
        + (plan or "nothing (every mapping row is up to date)")
        + ".",
    ]
    examples = [e for d in differences for e in d.examples[:5]]
    if examples:
        out += ["", "Examples:", ""] + [f"- {e}" for e in examples[:30]]
    return out


def _hours(seconds):
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main(args, log):
    """``python -m bench --chaos RATE``; returns the exit status."""
    if args.mode == "odoo":
        from . import chaos_odoo

        return chaos_odoo.main(args, log)
    if args.mode != "core":
        log("chaos run: --mode core or --mode odoo, one at a time")
        return 2
    preset = generate.PRESETS[args.preset]
    rate, seed = args.chaos, args.seed
    log(f"== chaos run, preset {preset.name}, rate {rate}, seed {seed}")
    chaos = Run(preset, rate, seed, args.max_runs, args.batch_size, log).execute()
    log("== the same script without faults")
    reference = Run(preset, 0.0, seed, args.max_runs, args.batch_size, log).execute()
    differences = compare(
        {**moodle_state(reference.fm), **oec_state(reference.store, reference.fm)},
        {**moodle_state(chaos.fm), **oec_state(chaos.store, chaos.fm)},
    )
    out = report(preset, rate, seed, chaos, reference, differences)
    converged = all(j.converged for j in chaos.jobs + reference.jobs)
    same = all(d.ok for d in differences) and not chaos.final_plan
    verdict = "nothing lost, nothing twice" if same else "**differences found**"
    if not converged:
        verdict += "; **a job did not converge**"
    out += ["", f"Verdict: {verdict}.", ""]
    print("\n".join(out))
    if args.check and not (same and converged):
        log("chaos run: lost, duplicated or not converged (see above)")
        return 1
    return 0
