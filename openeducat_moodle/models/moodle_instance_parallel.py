"""A full push with much to create runs as parallel jobs on ``root.moodle``.

``_job_push()`` (a full push: no phases, no seeds, no departments) pushes the
structure itself: departments, programs and subject courses, on which all the
rest depends. When what is left to create (accounts, groups, enrolments) is
at least the threshold (:data:`DEFAULT_THRESHOLD`, or the system parameter
:data:`THRESHOLD_PARAM`), it cuts the rest into parts (``sync/parallel.py``)
and enqueues them as one queue_job graph:

    users 1 … users n   →   courses 1 … courses n   →   last pass

Each arrow waits for every job before it. ``n`` is the capacity of
``root.moodle`` in queue_job's channel configuration (or the system parameter
:data:`PARTS_PARAM`; 1 never splits). Less to create, a push of some records
(save hooks, SyncRetries, the Sync Wizard) or a capacity of 1: one job, as
before.

* **No two jobs write the same rows.** A part acts on its own mapping keys
  only: users by disjoint sets of people (those whose accounts are decided
  together stay together), courses by disjoint sets of courses (a course's
  groups, enrolments and memberships). The last pass runs alone.
* **Locks.** The parts take the push lock shared (``SHARED_KINDS``) and so run
  at once; a plain push, a drift check or an import takes it exclusive, and
  also waits (without burning a retry) while any part of a parallel push of
  the instance is still to run. Two instances never wait for each other.
* **Failures.** A part is a push of its records: unchanged ones are skipped by
  hash, a record Moodle refuses fails alone, a rerun adopts what Moodle made.
  When Moodle fails part way, what the part did is kept (its job ends) and the
  same part is enqueued again after the instance's backoff, wired into the
  graph in its place: the jobs after it wait for it.
* **Run log.** The push has one run (kind "push"): the first job's, kept
  running until the last pass, summing its parts' counts and calls as they
  end; each part has a run of its own (kind "push_part") linked to it.
"""

import collections
import logging
import os

from odoo import _, fields, models
from odoo.tools import config

from odoo.addons.queue_job.delay import chain, group
from odoo.addons.queue_job.job import Job
from odoo.addons.queue_job.jobrunner.channels import ChannelManager

from ..const import CHANNEL, PROBE_LEAD, PUSH_LOCK
from ..moodle import MoodleAccessError, MoodleError, MoodleTransientError
from ..services.parallel_push import ParallelPush, PushPart
from ..services.sync_services import push_counts, push_summary
from ..sync.parallel import LAST, Part
from .moodle_instance_runs import RUN_COUNTERS, RUN_LOCKS, SHARED_KINDS

_logger = logging.getLogger(__name__)

# System parameters: parts per stage (default: root.moodle's capacity) and
# the fewest records to create that make a full push go on in parts.
PARTS_PARAM = "openeducat_moodle.push_parts"
THRESHOLD_PARAM = "openeducat_moodle.push_parts_threshold"
# About half a minute of Moodle 4.5's work on two cores (85 accounts or 350
# enrolments a second): below that, reading OpenEduCat and the mapping table
# once more per part costs more than running parts at once saves.
DEFAULT_THRESHOLD = 2000
# The queue_job states of a part still to run (or running).
LIVE_STATES = ("wait_dependencies", "pending", "enqueued", "started")
PART = "push_part"


def _calls_of(detail):
    """``{function: count}`` from a run's ``calls_detail`` text."""
    counts = collections.Counter()
    for line in (detail or "").splitlines():
        name, _sep, count = line.rpartition(": ")
        if name and count.isdigit():
            counts[name] += int(count)
    return counts


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    # === SETTINGS === #

    def _moodle_push_parts(self):
        """How many parts of one stage run at once: :data:`PARTS_PARAM`, else
        the capacity of ``root.moodle`` in queue_job's channels (1 when the
        channel is not configured: one job)."""
        value = self.env["ir.config_parameter"].sudo().get_param(PARTS_PARAM)
        if value and value.strip().isdigit():
            return max(1, int(value))
        channels = (
            os.environ.get("ODOO_QUEUE_JOB_CHANNELS")
            or config.misc.get("queue_job", {}).get("channels")
            or "root:1"
        )
        try:
            parsed = ChannelManager.parse_simple_config(channels)
        except ValueError:
            return 1
        for channel in parsed:
            if channel["name"] in (CHANNEL, CHANNEL.partition(".")[2]):
                return max(1, int(channel.get("capacity") or 1))
        return 1

    def _moodle_push_threshold(self):
        value = self.env["ir.config_parameter"].sudo().get_param(THRESHOLD_PARAM)
        if value and value.strip().isdigit():
            return max(1, int(value))
        return DEFAULT_THRESHOLD

    # === THE FIRST JOB === #

    def _job_push(self, phases=None, seeds=None, department_ids=None):
        # A full push may go on in parts; any other push is one job.
        if phases or seeds or department_ids:
            return super()._job_push(phases, seeds, department_ids)
        count = self._moodle_push_parts()
        if count < 2:
            return super()._job_push()
        return self._moodle_parallel_push(count)

    def _moodle_parallel_push(self, count):
        """A full push that goes on in ``count`` parts per stage when much is
        left to create after the structure (else the whole push, here).

        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pushed"
        threshold = self._moodle_push_threshold()

        def work(client):
            driver = ParallelPush(self, client, count, threshold)
            try:
                result = driver.run()
            except MoodleError as err:
                if driver.engine is not None:
                    err.partial_counts = push_counts(driver.engine.result)
                raise
            summary, counts = push_summary(result), push_counts(result)
            if driver.parts is None:
                self._moodle_note_unenrolments(result.held_unenrolments, full=True)
                return summary, counts
            own = dict(counts, message=summary, calls_detail=dict(client.call_counts))
            own["fresh_courses"] = driver.fresh_courses
            self._moodle_start_parts(work.run_id, driver.parts, own)
            counts["state"] = "running"
            return self._moodle_parts_message(summary, driver.parts, done=0), counts

        work.run_id = None
        summary, error = self._run("push", work)
        if isinstance(error, MoodleTransientError):
            until = getattr(error, "backoff_until", None)
            self._enqueue_push(eta=until and until + PROBE_LEAD)
        return summary

    def _moodle_parts_message(self, summary, parts, done):
        stages = collections.Counter(part.stage for part in parts)
        return "\n".join(
            filter(
                None,
                [
                    summary,
                    _(
                        "Goes on in %(count)s parts on %(channel)s, %(users)s of "
                        "users, then %(courses)s of courses (groups, enrolments), "
                        "then a last pass; %(done)s done.",
                        count=len(parts),
                        channel=CHANNEL,
                        users=stages.get(1, 0),
                        courses=stages.get(2, 0),
                        done=done,
                    ),
                ],
            )
        )

    def _moodle_start_parts(self, run_id, parts, own):
        """Keep the parts' plan on the push's run and enqueue them as one
        graph, stage after stage (in this job's transaction: they start once
        the structure it pushed is committed)."""
        plan = {"parts": [part.as_dict() for part in parts], "own": own}

        def keep(instance):
            instance.env["moodle.sync.run"].browse(run_id).write(
                {"parallel_plan": plan}
            )

        self._moodle_own_transaction(keep)
        stages = collections.defaultdict(list)
        for part in parts:
            stages[part.stage].append(self._moodle_part_delayable(run_id, part.key))
        links = [
            group(*jobs) if len(jobs) > 1 else jobs[0]
            for _stage, jobs in sorted(stages.items())
        ]
        (chain(*links) if len(links) > 1 else links[0]).delay()

    def _moodle_part_identity(self, run_id, key):
        return f"moodle:{self.id}:{PART}:{run_id}:{key}"

    def _moodle_part_delayable(self, run_id, key, eta=None):
        return self.delayable(
            channel=CHANNEL,
            eta=self._moodle_eta(eta),
            identity_key=self._moodle_part_identity(run_id, key),
            description=_(
                "Moodle push to %(name)s, part %(part)s", name=self.name, part=key
            ),
        )._job_push_part(run_id, key)

    # === THE PARTS === #

    def _job_push_part(self, run_id, part_key):
        """Job: one part of a parallel full push.

        :param int run_id: the push's ``moodle.sync.run``
        :param str part_key: the part (``users-1``, ``courses-2``, ``last``)
        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        parent = self.env["moodle.sync.run"].sudo().browse(run_id).exists()
        specs = {p["key"]: p for p in (parent.parallel_plan or {}).get("parts", [])}
        if part_key not in specs:
            return "this parallel push is gone: nothing to do"
        if parent.state != "running":
            return f"this parallel push has ended ({parent.state}): nothing to do"
        if not self.active or self.health_state == "access":
            why = _("instance archived") if not self.active else self.health_message
            self._moodle_end_parts(run_id, _("Not run: %s", why))
            return f"not run: {why}"
        part = Part.from_dict(specs[part_key])
        # A first attempt trusts that the courses the first job made hold no
        # group yet; a rerun looks (see PushPart).
        first = part_key not in parent.part_run_ids.mapped("part_key")
        fresh = parent.parallel_plan["own"].get("fresh_courses") if first else ()

        def work(client):
            driver = PushPart(self, client, part, fresh)
            try:
                result = driver.run()
            except MoodleError as err:
                if driver.engine is not None:
                    err.partial_counts = push_counts(driver.engine.result)
                raise
            if part.key == LAST:
                self._moodle_note_unenrolments(result.held_unenrolments, full=True)
            return push_summary(result) or _("nothing to push"), push_counts(result)

        runner = self.with_context(moodle_parent_run=run_id, moodle_part=part_key)
        summary, error = runner._run(PART, work)
        if isinstance(error, MoodleTransientError):
            self._moodle_retry_part(run_id, part_key, error)
        elif isinstance(error, MoodleAccessError):
            self._moodle_end_parts(run_id, summary)
            return summary
        self._moodle_sum_parts(run_id, close=part_key == LAST and error is None)
        return summary

    def _moodle_retry_part(self, run_id, part_key, error):
        """Moodle failed part way: what the part did is kept (its job ends
        and commits); the same part runs again after the instance's backoff,
        in its place in the graph, so that the jobs after it wait for it."""
        until = getattr(error, "backoff_until", None)
        eta = until and until + PROBE_LEAD
        uuid = self.env.context.get("job_uuid") or ""
        current = self.env["queue.job"].sudo().search([("uuid", "=", uuid)], limit=1)
        # One retry per failed job: its key names the job it replaces.
        identity = self._moodle_part_identity(run_id, part_key)
        job = self.with_delay(
            channel=CHANNEL,
            eta=self._moodle_eta(eta),
            identity_key=f"{identity}:after:{uuid[:8]}" if uuid else identity,
            description=_(
                "Moodle push to %(name)s, part %(part)s (again)",
                name=self.name,
                part=part_key,
            ),
        )._job_push_part(run_id, part_key)
        if not current.graph_uuid or job.uuid == current.uuid:
            return job
        children = Job.load_many(
            self.env, current.dependencies.get("reverse_depends_on", [])
        )
        for child in children:
            # Its other parents too: stored alone, the new one would replace them.
            child.add_depends(set(child.depends_on) | {job})
            child.store()
        job.graph_uuid = current.graph_uuid
        job.store()
        return job

    def _moodle_sum_parts(self, run_id, close=False):
        """The push's run: what its first job did plus what its parts did so
        far; ``close``: the last pass is done, the push too."""

        def total(instance):
            runs = instance.env["moodle.sync.run"]
            parent = runs.browse(run_id).exists()
            if not parent:
                return
            plan = parent.parallel_plan or {}
            own = plan.get("own") or {}
            parts = runs.search([("parent_run_id", "=", run_id)], order="id")
            values = {
                name: (own.get(name) or 0) + sum(parts.mapped(name))
                for name in RUN_COUNTERS
            }
            calls = collections.Counter(own.get("calls_detail") or {})
            for run in parts:
                calls.update(_calls_of(run.calls_detail))
            values["calls"] = sum(calls.values())
            values["calls_detail"] = "\n".join(
                f"{name}: {count}" for name, count in sorted(calls.items())
            )
            keys = [p["key"] for p in plan.get("parts", [])]
            done = {run.part_key for run in parts if run.state in ("done", "partial")}
            lines = [
                f"{run.part_key}: {run.message or ''}".strip()
                for run in parts
                if run.state in ("done", "partial", "failed")
            ]
            summary = self._moodle_parts_message(
                own.get("message"),
                [Part.from_dict(p) for p in plan.get("parts", [])],
                done=len(done & set(keys)),
            )
            values["message"] = "\n".join([summary, *lines])
            if close:
                parts.filtered(lambda r: r.state == "running").write(
                    {
                        "state": "interrupted",
                        "message": _("The worker stopped before the end; run again."),
                    }
                )
                missing = [key for key in keys if key not in done]
                values["state"] = (
                    "partial" if values.get("failed") or missing else "done"
                )
                values["duration"] = (
                    fields.Datetime.now() - parent.start_date
                ).total_seconds()
            parent.write(values)
            return values.get("state")

        state = self._moodle_own_transaction(total)
        if state in ("done", "partial"):
            # The push is over: it counts as a sync (see SYNC_KINDS).
            self._moodle_note_success(sync=True)

    def _moodle_end_parts(self, run_id, why):
        """The push stops before its end (the instance was paused or
        archived): its run says so; the parts still queued do nothing, and
        the next full push does what they would have."""
        self._moodle_sum_parts(run_id)

        def end(instance):
            run = instance.env["moodle.sync.run"].browse(run_id).exists()
            if run and run.state == "running":
                run.write(
                    {
                        "state": "failed",
                        "message": f"{why}\n{run.message or ''}".strip(),
                        "duration": (
                            fields.Datetime.now() - run.start_date
                        ).total_seconds(),
                    }
                )

        self._moodle_own_transaction(end)

    # === LOCKS AND THE RUN LOG === #

    def _moodle_try_lock(self, kind):
        taken = super()._moodle_try_lock(kind)
        if (
            taken
            and kind not in SHARED_KINDS
            and RUN_LOCKS.get(kind) == PUSH_LOCK
            and self._moodle_parts_live()
        ):
            # A parallel push is under way: between two of its jobs no lock
            # is held, and yet a push, drift check or import now would write
            # what its parts are about to.
            return False
        return taken

    def _moodle_parts_live(self):
        """Whether a parallel push of this instance still has parts to run
        (a graph where a part failed for good runs no further: not live).

        Asked in this transaction (it sees its own jobs) and in a new one: a
        job's snapshot may predate the commit of the push that enqueued them.
        """
        query = (
            "SELECT 1 FROM queue_job j WHERE j.identity_key LIKE %s "
            "AND j.state IN %s AND NOT EXISTS (SELECT 1 FROM queue_job f "
            "WHERE f.graph_uuid = j.graph_uuid AND f.state IN ('failed', "
            "'cancelled')) LIMIT 1"
        )
        args = (f"moodle:{self.id}:{PART}:%", LIVE_STATES)
        self.env["queue.job"].flush_model()
        self.env.cr.execute(query, args)
        if self.env.cr.fetchone():
            return True
        with self.env.registry.cursor() as cr:
            cr.execute(query, args)
            return bool(cr.fetchone())

    def _moodle_close_interrupted(self, kind):
        # A part never closes the runs of its siblings or its push: they may
        # be alive (a push that holds the lock exclusive does, see above).
        if kind in SHARED_KINDS:
            return None
        return super()._moodle_close_interrupted(kind)

    def _moodle_log_run(self, values, run_id=None):
        parent = self.env.context.get("moodle_parent_run")
        if parent and not run_id:
            values = dict(
                values,
                parent_run_id=parent,
                part_key=self.env.context.get("moodle_part"),
            )
        return super()._moodle_log_run(values, run_id)

    def _compute_last_run(self):
        # The last run of the instance, a parallel push's parts aside (their
        # push's run is the one that says what happened).
        for instance in self:
            instance.last_run_id = self.env["moodle.sync.run"].search(
                [("instance_id", "=", instance.id), ("parent_run_id", "=", False)],
                limit=1,
            )
