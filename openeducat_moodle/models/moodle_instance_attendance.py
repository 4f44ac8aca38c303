import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from odoo.addons.queue_job.exception import RetryableJobError

from ..moodle import MoodleAccessError
from ..services.attendance import SyncAttendance

_logger = logging.getLogger(__name__)

ATTENDANCE_LOCK = 0x4D415454  # "MATT", with the instance id

# Access failures that concern the whole site (the token, the service, the
# endpoint) pause the instance; the others (a function or capability missing
# for attendance only) stop attendance alone.
SITE_ACCESS_ERRORS = frozenset(
    {
        "invalidtoken",
        "invalidtimedtoken",
        "invalidiptoken",
        "servicenotavailable",
        "webservicesnotenabled",
        "restprotocoldisabled",
        "redirected",
        "endpointnotfound",
        "forcepasswordchangenotice",
        "sitepolicynotagreed",
        "usernotfullysetup",
    }
)


class MoodleMapping(models.Model):
    _inherit = "moodle.mapping"

    moodle_model = fields.Selection(
        selection_add=[("attendance", "Attendance session")],
        ondelete={"attendance": "cascade"},
    )


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    attendance_status = fields.Selection(
        [
            ("never", "Not run yet"),
            ("ok", "Synced"),
            ("skipped", "Skipped: prerequisites missing"),
            ("error", "Failed"),
        ],
        default="never",
        readonly=True,
        copy=False,
    )
    attendance_message = fields.Text(
        string="Attendance Sync Report", readonly=True, copy=False
    )
    attendance_last_sync = fields.Datetime(
        string="Last Attendance Sync", readonly=True, copy=False
    )

    def _attendance_report(self, status, message):
        self.sudo().write(
            {
                "attendance_status": status,
                "attendance_message": message,
                "attendance_last_sync": fields.Datetime.now(),
            }
        )

    def action_sync_attendance_now(self):
        """Button (also callable over XML-RPC by a Moodle Manager): enqueue an
        attendance sync of these instances."""
        self._check_moodle_manager()
        for instance in self:
            if not instance.sync_attendance:
                raise UserError(
                    _("Attendance sync is turned off on %s.", instance.name)
                )
            instance._enqueue_attendance()
        return self._notify(
            _("Attendance sync enqueued"),
            _("Attendance is synced with Moodle in the background."),
            "info",
        )

    def _enqueue_attendance(self, eta=None):
        self.ensure_one()
        delayed = self._moodle_delay(
            "attendance", _("Moodle attendance sync with %s", self.name), eta
        )
        return delayed and delayed._job_sync_attendance()

    def _job_sync_attendance(self):
        """Job: sync attendance of this instance in its configured direction.

        Prerequisites are checked first; when one is missing, attendance is
        skipped with a status on the instance, and nothing else is affected:
        only a failure of the whole site (token, service, network) pauses or
        backs off the instance, as for every sync. One run per instance at a
        time (advisory lock): two runs could create the same register, sheet
        or Moodle session.

        :return: a one-line summary (also in the run log), kept on the job
        :raise RetryableJobError: another attendance run holds the lock
        """
        self.ensure_one()
        if not self.active or not self.sync_attendance:
            return "attendance sync off: nothing done"
        self.env.cr.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", (ATTENDANCE_LOCK, self.id)
        )
        if not self.env.cr.fetchone()[0]:
            raise RetryableJobError(
                "Another attendance sync of this Moodle instance is running",
                seconds=60,
            )
        outcome = {}

        def work(client):
            try:
                result = SyncAttendance(self, client).run()
            except MoodleAccessError as err:
                if err.errorcode in SITE_ACCESS_ERRORS:
                    raise
                # A function or capability missing for attendance alone.
                outcome["status"] = "error"
                return f"attendance failed: {err}", {"failed": 1}
            for error in result.errors[:20]:
                _logger.warning("moodle attendance (instance %s): %s", self.id, error)
            outcome.update(
                status="skipped" if result.skipped else "ok",
                conflicts=result.conflicts,
            )
            summary = result.summary()
            if result.errors:
                summary += "\n" + "\n".join(result.errors[:50])
            return summary, {
                "created": result.created + result.sessions_created,
                "updated": result.updated + result.pushed,
                "unchanged": result.unchanged,
                "failed": result.failed,
                "blocked": result.custom + result.unmapped_users + result.no_batch,
            }

        summary, _error = self._run("attendance", work)
        self._attendance_report(outcome.get("status", "error"), summary)
        if outcome.get("conflicts"):
            run = (
                self.env["moodle.sync.run"]
                .sudo()
                .search(
                    [("instance_id", "=", self.id), ("kind", "=", "attendance")],
                    limit=1,
                )
            )
            run.conflicts = outcome["conflicts"]
        return summary

    def _moodle_attendance_dry_run(self, client):
        """The Sync Wizard's attendance plan: read Moodle, write nowhere.

        :return: ``(summary, lines)``; lines are dicts of the wizard's plan
            lines (``kind``, ``key``, ``label``, ``action``)
        """
        self.ensure_one()
        result = SyncAttendance(self, client, dry_run=True).run()
        lines = []
        for entry in result.planned:
            what = entry[0]
            if what in ("pull", "push"):
                _what, session, userid, acronym = entry
                label = (
                    f"Moodle → OpenEduCat: {acronym}"
                    if what == "pull"
                    else f"OpenEduCat → Moodle: {acronym}"
                )
                key, action = f"att_session_{session}@user_{userid}", "update"
            elif what == "add_attendance":
                key, label, action = entry[1], "attendance activity in Moodle", "create"
            else:
                key = f"{entry[1]}#sheet_{entry[2]}"
                label, action = "attendance session in Moodle", "create"
            lines.append(
                {"kind": "attendance", "key": key, "label": label, "action": action}
            )
        return result.summary(), lines

    @api.model
    def _cron_attendance_sync(self):
        """Cron: one attendance job per active instance that syncs attendance."""
        for instance in self.search([("sync_attendance", "=", True)]):
            if instance._moodle_eta() is None:
                instance._enqueue_attendance()
