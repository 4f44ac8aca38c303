"""The sync services, under the names the product gives them.

Eight units, each runnable alone: a queue job each on ``moodle.instance``, a
choice in the Sync Wizard, and a dry run (``dry_run=True``: Moodle is read,
nothing is written on either side).

- SyncSubjects: departments, programs and subject courses
  (``_job_sync_subjects``; run log kind "push");
- SyncEnrollment: people, batch groups, enrolments and unenrolments
  (``_job_sync_enrollment``; "push");
- SyncGrades: gradebook, assignment and quiz grades, then completion when it
  runs with them (``_job_pull_grades``; "grades");
- SyncCompletion: course completion (``_job_pull_completion``; "completion");
- SyncAttendance: attendance, in the instance's direction
  (``_job_sync_attendance``; "attendance");
- SyncRetries: the failed records whose retry is due (``_job_sync_retries``;
  "push");
- SyncHealth: who Moodle is and what the token can call
  (``_job_health_check``; "health");
- SyncDrift: what Moodle changed or lost since the last push
  (``_job_drift_check``; "drift").

SyncSubjects and SyncEnrollment are :class:`~.push.SyncPush` (the engine
driver) restricted to their phases of the push core; the hourly full push
runs both, SyncSubjects first, in one job (``_job_push()``). SyncGrades,
SyncCompletion and SyncAttendance are the classes of :mod:`.grades` and
:mod:`.attendance`; :func:`run_service` runs any of the eight by name and
returns a :class:`ServiceResult`.
"""

import collections
import contextlib
import dataclasses

from odoo import fields

from ..models.moodle_mapping import PHASE_OF
from ..moodle.catalogue import FEATURES
from ..sync.push import PHASES
from ..sync.reconcile import DriftCheck
from .attendance import SyncAttendance
from .grades import SyncCompletion, SyncGrades
from .push import SyncPush

SUBJECT_PHASES = ("departments", "programs", "subjects")
ENROLLMENT_PHASES = ("users", "batches", "enrolments")


@dataclasses.dataclass
class ServiceResult:
    """What one run of a service did (or, in a dry run, would do).

    ``skipped`` counts the records found unchanged; ``lines`` are the records
    planned or acted on (dicts ``kind``, ``key``, ``label``, ``action``,
    ``reason``, ``res_model``, ``res_id``), ``detail`` the underlying result
    (:class:`~..sync.push.PushResult`, :class:`~.grades.PullResult`,
    :class:`~..sync.attendance.AttendanceResult`, …).
    """

    service: str
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    blocked: int = 0
    unenrolled: int = 0
    errors: list = dataclasses.field(default_factory=list)
    summary: str = ""
    lines: list = dataclasses.field(default_factory=list)
    detail: object = None


def seeds_of(records):
    """``{model: ids}`` for a recordset (or such a dict); ``None``: all."""
    if records is None:
        return None
    if isinstance(records, dict):
        return {model: sorted(set(ids)) for model, ids in sorted(records.items())}
    return {records._name: sorted(records.ids)}


def push_counts(result):
    """The run log's counters of a :class:`~..sync.push.PushResult`."""
    counts = {
        name: result.total(name)
        for name in ("created", "updated", "unchanged", "failed", "blocked")
    }
    counts["created"] += result.total("adopted")
    counts["unenrolled"] = result.total("unenrolled")
    return counts


def push_summary(result):
    """The run log's message for a :class:`~..sync.push.PushResult`: one
    clause per phase, then the held unenrolments and the objects found
    deleted in Moodle."""
    summary = ", ".join(
        f"{name}: {p.created + p.adopted} created, {p.updated} updated, "
        f"{p.unchanged} unchanged, {p.failed} failed, {p.blocked} blocked"
        + (f", {p.unenrolled} unenrolled" if p.unenrolled else "")
        + (f", {p.shortened} shortened to fit" if p.shortened else "")
        + (f", {p.held} unenrolments held" if p.held else "")
        for name, p in result.phases.items()
    )
    held = result.held_unenrolments
    if held:
        summary += "\n" + held["reason"]
    if result.lost:
        summary += "\n" + "\n".join(
            f"{lost['key']}: {lost['reason']}" for lost in result.lost[:50]
        )
    return summary


def _push_result(service, result, dry_run):
    counts = push_counts(result)
    lines = [
        dict(record, kind=phase)
        for phase, counts_ in result.phases.items()
        for record in counts_.records
    ]
    return ServiceResult(
        service=service,
        dry_run=dry_run,
        created=counts["created"],
        updated=counts["updated"],
        skipped=counts["unchanged"],
        failed=counts["failed"],
        blocked=counts["blocked"],
        unenrolled=counts["unenrolled"],
        errors=[
            f"{line['key']}: {line['reason']}"
            for line in lines
            if line["action"] == "failed"
        ],
        summary=push_summary(result) or "nothing to push",
        lines=lines,
        detail=result,
    )


class _ServicePush(SyncPush):
    """:class:`~.push.SyncPush` limited to the phases of one service: whatever
    it is asked, it runs only those the service owns (and the instance
    enables)."""

    def __init__(self, instance, client, dry_run=False, phases=PHASES):
        super().__init__(instance, client, dry_run=dry_run)
        self.service_phases = tuple(phases)

    def settings(self):
        settings = super().settings()
        settings.phases = tuple(p for p in settings.phases if p in self.service_phases)
        return settings


class SyncService:
    """One sync service of one instance.

    :param instance: a ``moodle.instance``
    :param client: its :class:`~..moodle.MoodleClient`
    :param bool dry_run: read Moodle, write nothing on either side
    :param department_ids: narrow the departments served (Sync Wizard); the
        push services only
    """

    name = ""
    title = ""

    def __init__(self, instance, client, dry_run=False, department_ids=None):
        self.instance = instance
        self.client = client
        self.dry_run = dry_run
        self.department_ids = department_ids or None

    def run(self, records=None):
        """Run the service.

        :param records: what the run is about (the service's default:
            everything)
        :rtype: ServiceResult
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a
            whole; what succeeded before is kept
        """
        raise NotImplementedError


class _PushService(SyncService):
    """A service made of phases of the push core."""

    phases = ()

    @classmethod
    def driver(cls, instance, client, dry_run=False):
        """The engine driver the service's jobs and runs use: a SyncPush
        restricted to :attr:`phases`."""
        return _ServicePush(instance, client, dry_run=dry_run, phases=cls.phases)

    def run(self, records=None):
        """Push the service's phases.

        :param records: a recordset of a pushed OpenEduCat model, or
            ``{model: ids}``: the people and enrolments pushed are those and
            what they bring (a program's enrolments and teachers…); the
            academic structure is small and always planned whole, so what
            changed in it is pushed whatever the records. ``None``: everything.
        :rtype: ServiceResult
        """
        self.engine_driver = self.driver(self.instance, self.client, self.dry_run)
        result = self.engine_driver.run(
            None, seeds_of(records), department_ids=self.department_ids
        )
        return _push_result(self.title, result, self.dry_run)

    @property
    def engine(self):
        """The push core of the last run (its plan, candidates…)."""
        driver = getattr(self, "engine_driver", None)
        return getattr(driver, "engine", None)


class SyncSubjects(_PushService):
    """Departments (course categories, parents first), programs (their
    sub-categories) and one Moodle course per subject and program."""

    name = "subjects"
    title = "SyncSubjects"
    phases = SUBJECT_PHASES


class SyncEnrollment(_PushService):
    """Students and faculty (accounts), batches (a group in each course of
    their program) and enrolments: a student is enrolled in the courses of
    the subjects chosen in the enrolment (``subject_ids``), or of every
    subject of the program while none is chosen; a teacher in the courses of
    the subjects they teach. Enrolments OpenEduCat no longer holds are
    unenrolled (a mass unenrolment is held for a Moodle Manager)."""

    name = "enrollment"
    title = "SyncEnrollment"
    phases = ENROLLMENT_PHASES


def retry_scope(mappings):
    """``(phases, seeds)`` of a push that retries ``mappings``, in dependency
    order."""
    phases, seeds = set(), collections.defaultdict(set)
    for mapping in mappings:
        phase = PHASE_OF.get((mapping.moodle_model, mapping.res_model))
        if not phase:
            continue
        phases.add(phase)
        seeds[mapping.res_model].add(mapping.res_id)
    return (
        [p for p in PHASES if p in phases],
        {model: sorted(ids) for model, ids in sorted(seeds.items())},
    )


class SyncRetries(SyncService):
    """Push again the records that failed and whose next attempt is due (5
    min, 30 min, 4 h, 24 h after each failure), in the phases that make
    them."""

    name = "retries"
    title = "SyncRetries"

    @staticmethod
    def due(instance, records=None):
        """The failed mapping rows of ``instance`` to retry: those due, or
        ``records`` (``moodle.mapping``) whatever their date."""
        domain = [("instance_id", "=", instance.id)]
        if records is None:
            domain += [
                ("state", "=", "error"),
                ("next_retry_date", "<=", fields.Datetime.now()),
            ]
        else:
            domain += [("id", "in", records.ids), ("state", "in", ("error", "failed"))]
        return instance.env["moodle.mapping"].sudo().search(domain)

    def run(self, records=None):
        """:param records: ``moodle.mapping`` rows (default: every due one)"""
        phases, seeds = retry_scope(self.due(self.instance, records))
        if not phases:
            return ServiceResult(self.title, self.dry_run, summary="nothing to retry")
        result = SyncPush(self.instance, self.client, dry_run=self.dry_run).run(
            phases, seeds
        )
        return _push_result(self.title, result, self.dry_run)


class SyncHealth(SyncService):
    """Ask Moodle who it is and what the token may call, per enabled
    feature. It writes nothing: the health check job records the answer on
    the instance and flags a stale one."""

    name = "health"
    title = "SyncHealth"

    def run(self, records=None):
        caps = self.client.capabilities()
        features = self.instance._enabled_features()
        missing = caps.missing_for(features)
        return ServiceResult(
            self.title,
            self.dry_run,
            failed=len(missing),
            errors=[
                f"{name}: missing from the service ({FEATURES.get(feature, feature)})"
                for feature in features
                for name in caps.missing_for([feature])
            ],
            summary=caps.summary(features),
            detail=caps,
        )


class SyncDrift(SyncService):
    """Compare what Moodle holds with what was last pushed. Changed objects
    lose their hash and deleted ones their mapping row, so that the next
    push sends OpenEduCat's version again (the drift check job enqueues it).
    In a dry run the mapping table is left as it was."""

    name = "drift"
    title = "SyncDrift"

    def run(self, records=None):
        driver = SyncPush(self.instance, self.client)
        cr = self.instance.env.cr
        if self.dry_run:
            # The check writes the mapping rows it finds out of date: in a dry
            # run those writes are rolled back.
            with contextlib.closing(cr.savepoint()):
                result = driver.run(engine=DriftCheck)
        else:
            result = driver.run(engine=DriftCheck)
        engine = driver.engine
        lines = [dict(_line(record), action="update") for record in engine.drifted] + [
            dict(_line(record), action="create") for record in engine.deleted
        ]
        summary = (
            f"{len(engine.drifted)} changed in Moodle, {len(engine.deleted)} "
            f"deleted in Moodle, {result.total('unchanged')} as pushed"
        )
        return ServiceResult(
            self.title,
            self.dry_run,
            updated=len(engine.drifted),
            skipped=result.total("unchanged"),
            failed=len(engine.deleted),
            errors=[f"{line['key']}: {line['reason']}" for line in lines],
            summary=summary,
            lines=lines,
            detail=result,
        )


def _line(record):
    return {
        key: record.get(key)
        for key in ("kind", "key", "label", "reason", "res_model", "res_id")
    }


# === BY NAME === #


def _run_grades(instance, client, dry_run, records, department_ids):
    result = SyncGrades(instance, client, dry_run=dry_run).pull_all_combined()
    completion = ", ".join(f"{k}: {v}" for k, v in sorted(result.completion.items()))
    return ServiceResult(
        "SyncGrades",
        dry_run,
        created=result.created,
        updated=result.updated,
        skipped=result.unchanged,
        failed=result.failed_courses,
        blocked=result.unmapped_students,
        errors=list(result.errors),
        summary=(
            f"{result.courses} courses: {result.created} grades created, "
            f"{result.updated} updated, {result.unchanged} unchanged"
            + (f"; completion {completion}" if completion else "")
        ),
        lines=[
            {
                "kind": "grades",
                "key": p["key"],
                "label": f"{p['marks']} / {p['total']}",
                "action": p["action"],
            }
            for p in result.planned
        ],
        detail=result,
    )


def _run_completion(instance, client, dry_run, records, department_ids):
    result = SyncCompletion(instance, client, dry_run=dry_run).run()
    return ServiceResult(
        "SyncCompletion",
        dry_run,
        updated=sum(v for k, v in result.completion.items() if k != "error"),
        failed=result.completion.get("error", 0),
        errors=list(result.errors),
        summary=", ".join(f"{k}: {v}" for k, v in sorted(result.completion.items()))
        or "no enrolments",
        detail=result,
    )


def _run_attendance(instance, client, dry_run, records, department_ids):
    result = SyncAttendance(instance, client, dry_run=dry_run).run()
    return ServiceResult(
        "SyncAttendance",
        dry_run,
        created=result.created + result.sessions_created,
        updated=result.updated + result.pushed,
        skipped=result.unchanged,
        failed=result.failed,
        blocked=result.custom + result.unmapped_users + result.no_batch,
        errors=list(result.errors),
        summary=result.summary(),
        detail=result,
    )


def _runner(cls):
    def run(instance, client, dry_run, records, department_ids):
        return cls(instance, client, dry_run, department_ids).run(records)

    return run


@dataclasses.dataclass(frozen=True)
class Service:
    """A service by name: its class's name, its job, its kind of run."""

    name: str
    title: str
    job: str
    kind: str
    runner: object


# The eight services, in the order a full sync runs them.
SERVICES = {
    s.name: s
    for s in (
        Service(
            "subjects",
            "SyncSubjects",
            "_job_sync_subjects",
            "push",
            _runner(SyncSubjects),
        ),
        Service(
            "enrollment",
            "SyncEnrollment",
            "_job_sync_enrollment",
            "push",
            _runner(SyncEnrollment),
        ),
        Service("grades", "SyncGrades", "_job_pull_grades", "grades", _run_grades),
        Service(
            "completion",
            "SyncCompletion",
            "_job_pull_completion",
            "completion",
            _run_completion,
        ),
        Service(
            "attendance",
            "SyncAttendance",
            "_job_sync_attendance",
            "attendance",
            _run_attendance,
        ),
        Service(
            "retries", "SyncRetries", "_job_sync_retries", "push", _runner(SyncRetries)
        ),
        Service(
            "health", "SyncHealth", "_job_health_check", "health", _runner(SyncHealth)
        ),
        Service("drift", "SyncDrift", "_job_drift_check", "drift", _runner(SyncDrift)),
    )
}
# The services made of push phases, in the order they run: their jobs take
# seeds.
PUSH_SERVICES = {"subjects": SyncSubjects, "enrollment": SyncEnrollment}


def services_of(phases):
    """The push services that own ``phases``, in the order they run (a save
    hook's phases → the services its save enqueues)."""
    return [
        name for name, cls in PUSH_SERVICES.items() if set(cls.phases) & set(phases)
    ]


def run_service(
    name, instance, client, dry_run=False, records=None, department_ids=None
):
    """Run one service by name, in this transaction.

    :param str name: a key of :data:`SERVICES`
    :param records: what the run is about (see each service's ``run``)
    :param department_ids: narrow the departments (push services only)
    :rtype: ServiceResult
    """
    return SERVICES[name].runner(instance, client, dry_run, records, department_ids)
