"""How the jobs of one instance run side by side, and what they record.

Push, grade pull, completion, attendance, drift check, import and health check
of one instance all run on ``root.moodle`` and may overlap. Three rules keep
them from harming each other:

* **Bookkeeping in its own short transaction.** A job never updates the
  ``moodle.instance`` row (health, backoff, last sync) or its run log row in
  its own, long transaction: at REPEATABLE READ the second of two jobs to do
  so would be rolled back whole, its mappings, grades and attendance lines
  with it. :meth:`_moodle_own_transaction` writes them and commits at once.
* **One lock per instance and kind of run.** Runs that write the same rows
  take the same transaction-level advisory lock. A push, a drift check or an
  import that finds it held waits (postponed without burning a retry); a pull
  or an attendance run is skipped, with a line in the run log, since the
  running one does the same work. The parts of a parallel push
  (``moodle_instance_parallel.py``) write disjoint rows: they share the push
  lock among themselves, and any other push, drift check or import of the
  instance waits for all of them.
* **One backoff per outage.** Failures inside one backoff window count once;
  a probe (one call) at the end of the window lifts the pause as soon as
  Moodle answers, and the jobs that waited run then.
"""

import datetime
import logging
import random
import time

import psycopg2
from psycopg2 import errorcodes

from odoo import _, fields, models
from odoo.exceptions import UserError

from odoo.addons.queue_job.exception import RetryableJobError

from ..const import ATTENDANCE_LOCK, CHANNEL, PROBE_LEAD, PULL_LOCK, PUSH_LOCK
from ..moodle import MoodleAccessError, MoodleError, MoodleTransientError
from ..sync.backoff import RETRY_DELAYS

_logger = logging.getLogger(__name__)

RUN_COUNTERS = (
    "created",
    "updated",
    "unchanged",
    "failed",
    "blocked",
    "unenrolled",
    "conflicts",
)

# The lock each kind of run takes: kinds that write the same rows share one.
RUN_LOCKS = {
    "push": PUSH_LOCK,
    "drift": PUSH_LOCK,
    "import": PUSH_LOCK,
    "grades": PULL_LOCK,
    "completion": PULL_LOCK,
    "attendance": ATTENDANCE_LOCK,
    "push_part": PUSH_LOCK,
}
# Kinds that take their lock shared: the parts of one parallel push run at
# once (they never write the same rows); the others take it exclusive.
SHARED_KINDS = frozenset({"push_part"})
# Kinds that wait for the lock; the others are skipped while it is held.
WAITING_KINDS = frozenset({"push", "drift", "import", "push_part"})
# Kinds whose success counts as a sync for the staleness check (a parallel
# push counts once, when its last part is done: its parts do not write the
# instance, which they would all do at once).
SYNC_KINDS = frozenset({"push", "grades", "completion", "attendance"})
# A job that met the lock or the backoff tries again this long after.
LOCK_RETRY_SECONDS = 60
_RETRY_PGCODES = frozenset(
    {
        errorcodes.SERIALIZATION_FAILURE,
        errorcodes.DEADLOCK_DETECTED,
        errorcodes.LOCK_NOT_AVAILABLE,
    }
)


class _NotCommitted(Exception):
    """The instance is not visible to another transaction yet."""


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    # === OWN TRANSACTIONS === #

    def _moodle_own_transaction(self, work):
        """Run ``work(instance)`` in a short transaction of its own, committed
        at once, and return what it returns.

        ``instance`` is this instance on the new cursor, as superuser, holding
        the row lock, at READ COMMITTED: it sees the latest committed state,
        whatever the calling transaction's snapshot. When the instance is not
        committed yet (created in the calling transaction: a test, a set-up
        script) nothing else can see it, and ``work`` runs in the calling
        transaction.
        """
        self.ensure_one()
        for attempt in range(4):
            try:
                with self.env.registry.cursor() as cr:
                    # READ COMMITTED: once the row lock is ours, we read and
                    # write on what the job that held it committed. At
                    # Odoo's REPEATABLE READ the snapshot taken before the
                    # wait makes every such wait a serialization failure (an
                    # ERROR line in the log, then a retry).
                    cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    cr.execute("SET LOCAL lock_timeout = '5s'")
                    # NO KEY UPDATE: a plain FOR UPDATE would conflict with
                    # the KEY SHARE locks the running jobs' foreign-key checks
                    # take on this row, and roll them back at REPEATABLE READ.
                    cr.execute(
                        "SELECT id FROM moodle_instance WHERE id = %s "
                        "FOR NO KEY UPDATE",
                        [self.id],
                    )
                    if not cr.fetchone():
                        raise _NotCommitted
                    side = self.with_env(self.env(cr=cr, su=True))
                    result = work(side)
                    # Flushed here: the cursor's transaction only holds its
                    # environments weakly, and this one goes out of scope.
                    side.env.flush_all()
                self.invalidate_recordset()
                return result
            except _NotCommitted:
                break
            except psycopg2.OperationalError as err:
                if err.pgcode not in _RETRY_PGCODES:
                    raise
                _logger.info(
                    "moodle instance %s: bookkeeping retried (%s)",
                    self.id,
                    errorcodes.lookup(err.pgcode),
                )
                time.sleep(random.uniform(0, 0.2 * 2**attempt))
        # Not committed yet, or the calling transaction itself holds the row:
        # then it is the one to write it.
        return work(self.sudo())

    # === LOCKS === #

    def _moodle_try_lock(self, kind):
        """Take this instance's lock for ``kind`` until the transaction ends.

        :return: True when taken (or when ``kind`` needs none)
        """
        namespace = RUN_LOCKS.get(kind)
        if namespace is None:
            return True
        if kind in SHARED_KINDS:
            query = "SELECT pg_try_advisory_xact_lock_shared(%s, %s)"
        else:
            query = "SELECT pg_try_advisory_xact_lock(%s, %s)"
        self.env.cr.execute(query, (namespace, self.id))
        return self.env.cr.fetchone()[0]

    # === RUNS === #

    def _run(self, kind, work, in_job=True):
        """Run one sync of this instance and log it as a ``moodle.sync.run``.

        Moodle failures that concern the whole instance become its state: an
        access failure pauses it (a human must fix Moodle), a transient one
        backs it off as a whole (one step per outage, see
        :meth:`_moodle_note_failure`).

        :param str kind: the run log's kind
        :param work: ``work(client) -> (summary, counts)``; when ``work`` has
            a ``run_id`` attribute, it is given the run log row's id before it
            is called; ``counts["state"]`` (``running``) keeps the row open
            for a run that goes on in other jobs (a parallel push)
        :param bool in_job: run by queue_job (a lock or a backoff then
            postpones the job); ``False`` for a run inside a user's request,
            which is refused instead
        :return: ``(summary, error)``; ``error`` is the transient or access
            failure that stopped the run, if any
        :raise RetryableJobError: the backoff is on, or another run holds the
            lock this kind waits for; never counted against the job's retries
        """
        self.ensure_one()
        now = fields.Datetime.now()
        if in_job and kind != "health" and self.health_state == "access":
            return _("paused: not run (Test Connection resumes the instance)"), None
        if self.backoff_until and self.backoff_until > now and in_job:
            raise RetryableJobError(
                _(
                    "Moodle could not be reached; the instance waits until "
                    "%(until)s (UTC): %(why)s",
                    until=self.backoff_until,
                    why=self.health_message or "",
                ),
                seconds=int((self.backoff_until - now).total_seconds())
                + int(PROBE_LEAD.total_seconds()),
                ignore_retry=True,
            )
        if not self._moodle_try_lock(kind):
            return self._moodle_locked_out(kind, in_job)
        self._moodle_close_interrupted(kind)
        run_id = self._moodle_log_run({"kind": kind, "state": "running"})
        if hasattr(work, "run_id"):
            work.run_id = run_id
        started = time.monotonic()
        client = self._get_client()
        values = {}
        error = None
        try:
            summary, counts = work(client)
        except MoodleAccessError as err:
            error, summary = err, _("paused: %s", err)
            self._moodle_note_access(err)
            values.update(state="failed", message=summary)
        except MoodleTransientError as err:
            error = err
            until = err.backoff_until = self._moodle_note_failure(err)
            summary = _(
                "Moodle unreachable, next attempt after %(until)s (UTC): %(err)s",
                until=until,
                err=err,
            )
            values.update(state="failed", message=summary)
        else:
            failed = counts.get("failed")
            values.update(
                {k: v for k, v in counts.items() if k in RUN_COUNTERS},
                state=counts.get("state") or ("partial" if failed else "done"),
                message=summary,
            )
            # A run where everything failed is no sync, whatever Moodle said.
            worked = sum(
                counts.get(k) or 0 for k in ("created", "updated", "unchanged")
            )
            synced = kind in SYNC_KINDS and (worked or not failed)
            self._moodle_note_success(sync=synced)
        if error is not None:
            values.update(
                {
                    k: v
                    for k, v in (getattr(error, "partial_counts", None) or {}).items()
                    if k in RUN_COUNTERS
                }
            )
        values.update(
            duration=time.monotonic() - started,
            calls=sum(client.call_counts.values()),
            calls_detail="\n".join(
                f"{name}: {count}" for name, count in sorted(client.call_counts.items())
            ),
        )
        self._moodle_log_run(values, run_id)
        return summary, error

    def _moodle_locked_out(self, kind, in_job):
        """Another run of this kind holds the lock: wait, or skip with a note."""
        running = self._moodle_running_since(kind)
        note = _(
            "Another %(kind)s of this instance is running%(since)s.",
            kind=kind,
            since=_(" (started %s UTC)", running) if running else "",
        )
        if not in_job:
            raise UserError(note + " " + _("Try again when it has finished."))
        if kind in WAITING_KINDS:
            raise RetryableJobError(
                note + " " + _("This one waits for it."),
                seconds=LOCK_RETRY_SECONDS,
                ignore_retry=True,
            )
        summary = note + " " + _("This one was skipped: the running one does it.")
        self._moodle_log_run({"kind": kind, "state": "skipped", "message": summary})
        return summary, None

    def _moodle_running_since(self, kind):
        run = (
            self.env["moodle.sync.run"]
            .sudo()
            .search(
                [
                    ("instance_id", "=", self.id),
                    ("kind", "=", kind),
                    ("state", "=", "running"),
                ],
                limit=1,
            )
        )
        return run.start_date

    def _moodle_close_interrupted(self, kind):
        """Runs of this lock still marked running died with their worker:
        this one holds the lock, so none of them can be alive."""
        namespace = RUN_LOCKS.get(kind)
        if namespace is None:
            return
        kinds = [k for k, ns in RUN_LOCKS.items() if ns == namespace]
        domain = [
            ("instance_id", "=", self.id),
            ("kind", "in", kinds),
            ("state", "=", "running"),
        ]
        # Most runs find none: no transaction of their own for nothing (a dead
        # worker's row was committed before this job began, so it is seen).
        if not self.env["moodle.sync.run"].sudo().search_count(domain, limit=1):
            return

        if namespace == PULL_LOCK:
            # Grade pulls and completion keep what they read as they go.
            message = _(
                "The worker stopped before the end (killed or restarted): the "
                "grades and completion it had stored are kept (each course is "
                "committed once written); the next run goes on with the rest."
            )
        else:
            message = _(
                "The worker stopped before the end (killed or restarted): "
                "what it did in OpenEduCat was rolled back; the next run "
                "redoes it, and adopts what it had created in Moodle."
            )

        def close(instance):
            runs = instance.env["moodle.sync.run"].search(domain)
            runs.write({"state": "interrupted", "message": message})

        self._moodle_own_transaction(close)

    def _moodle_log_run(self, values, run_id=None):
        """Create (or finish) a run log row in its own transaction."""

        def log(instance):
            runs = instance.env["moodle.sync.run"]
            if run_id:
                run = runs.browse(run_id).exists()
                if run:
                    run.write(values)
                    return run.id
            return runs.create({"instance_id": instance.id, **values}).id

        return self._moodle_own_transaction(log)

    # === INSTANCE STATE === #

    def _moodle_note_access(self, err):
        """Pause the instance: its jobs stop until Test Connection succeeds."""

        def flag(instance):
            instance.write({"health_state": "access", "health_message": str(err)})

        self._moodle_own_transaction(flag)

    def _moodle_note_failure(self, err):
        """Back off after Moodle could not be reached; return until when.

        Every job that meets one outage reports it; only the first one of a
        backoff window counts: the window grows (5 min, 30 min, 4 h, 24 h)
        only when the probe at its end fails too. A probe is enqueued for the
        end of each new window.
        """

        def back_off(instance):
            now = fields.Datetime.now()
            until = old_until = instance.backoff_until
            streak = instance.failure_streak
            new_window = not (until and until > now)
            if new_window:
                streak += 1
                until = now + RETRY_DELAYS[min(streak, len(RETRY_DELAYS)) - 1]
            if err.retry_after:
                until = max(until, now + datetime.timedelta(seconds=err.retry_after))
            values = {
                "failure_streak": streak,
                "backoff_until": until,
                "health_message": str(err),
            }
            if instance.health_state != "access":
                values["health_state"] = "error"
            instance.write(values)
            if until != old_until:
                instance.with_delay(
                    channel=CHANNEL,
                    eta=until,
                    identity_key=f"moodle:{instance.id}:probe",
                    description=_("Moodle probe of %s", instance.name),
                )._job_probe()
            return until

        return self._moodle_own_transaction(back_off)

    def _moodle_note_success(self, sync=True, values=None):
        """Moodle answered: lift any backoff, release the jobs that waited."""

        def succeed(instance):
            vals = dict(values or {})
            if sync:
                vals["last_sync_date"] = fields.Datetime.now()
            if instance.health_state in ("error", "stale", "unknown"):
                vals.setdefault("health_state", "ok")
            lifted = bool(instance.failure_streak or instance.backoff_until)
            if lifted:
                vals.update(failure_streak=0, backoff_until=False)
            if vals:
                instance.write(vals)
            if lifted:
                instance._moodle_release_waiting_jobs()
            return lifted

        return self._moodle_own_transaction(succeed)

    def _moodle_release_waiting_jobs(self):
        """Jobs of this instance held back by a backoff that is over: now."""
        self.ensure_one()
        jobs = (
            self.env["queue.job"]
            .sudo()
            .search(
                [
                    ("identity_key", "=like", f"moodle:{self.id}:%"),
                    ("state", "=", "pending"),
                    ("eta", ">", fields.Datetime.now()),
                    ("method_name", "!=", "_job_probe"),
                ]
            )
        )
        jobs.write({"eta": False})
        return jobs

    def _moodle_eta(self, eta=None):
        """When the next job may run: not before the instance's backoff ends
        (and the probe at its end has run)."""
        backoff = self.backoff_until
        if not backoff or backoff <= fields.Datetime.now():
            return eta
        ready = backoff + PROBE_LEAD
        if isinstance(eta, datetime.datetime) and eta >= ready:
            return eta
        return ready

    def _job_probe(self):
        """Job: one cheap call at the end of a backoff window.

        Moodle answers: the pause is lifted and the jobs that waited run now.
        It does not: the next, longer window starts, with its own probe.
        """
        self.ensure_one()
        if not self.active or self.health_state == "access":
            return "instance archived or paused: no probe"
        now = fields.Datetime.now()
        if not self.backoff_until:
            return "no backoff: nothing to probe"
        if self.backoff_until > now + datetime.timedelta(seconds=5):
            return f"the backoff runs until {self.backoff_until}: probe not due"
        client = self._get_client()
        try:
            info = client.get_site_info()
        except MoodleAccessError as err:
            self._moodle_note_access(err)
            return f"paused: {err}"
        except MoodleError as err:
            until = self._moodle_note_failure(err)
            self._moodle_log_run(
                {
                    "kind": "health",
                    "state": "failed",
                    "calls": 1,
                    "message": _(
                        "Probe: Moodle still unreachable, next attempt after "
                        "%(until)s (UTC): %(err)s",
                        until=until,
                        err=err,
                    ),
                }
            )
            return f"still unreachable until {until}"
        release = info.release or ""
        message = _("Probe: Moodle %s answers again; the pause is lifted.", release)
        self._moodle_note_success(sync=False, values={"health_message": message})
        self._moodle_log_run(
            {"kind": "health", "state": "done", "calls": 1, "message": message}
        )
        return message

    def _moodle_probe_now(self):
        """For a user's button: one call; on an answer, lift the pause now.

        :return: the error when Moodle still cannot be reached, else None
        """
        self.ensure_one()
        try:
            self._get_client().get_site_info()
        except MoodleError as err:
            return err
        self._moodle_note_success(sync=False)
        return None
