import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..moodle import MoodleAccessError, MoodleError
from ..services.attendance import SyncAttendance
from ..sync import attendance as core

_logger = logging.getLogger(__name__)

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
        selection_add=[
            ("attendance", "Attendance session"),
            ("attendance_activity", "Attendance activity"),
        ],
        ondelete={"attendance": "cascade", "attendance_activity": "cascade"},
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
        """Write the attendance report on the instance, in a transaction of
        its own (the instance row is every job's bookkeeping row)."""
        values = {
            "attendance_status": status,
            "attendance_message": message,
            "attendance_last_sync": fields.Datetime.now(),
        }
        self._moodle_own_transaction(lambda instance: instance.write(values))

    def action_test_connection(self):
        """Test Connection, plus what attendance would miss: without
        ``core_course_get_contents`` activities made in Moodle are not found,
        and an activity whose creation reply was lost is made again."""
        action = super().action_test_connection()
        if not self.sync_attendance or self.health_state != "ok":
            return action
        try:
            caps = self._get_client().capabilities()
        except MoodleError:
            return action  # reported by the test itself
        if core.can_discover(caps) or not core.moodle_prerequisites(caps)[0]:
            return action
        note = _(
            "Recommended for attendance: add %(function)s to the service. "
            "Without it, attendance activities added in Moodle are not found, "
            "and an activity whose creation reply was lost is made again.",
            function=core.DISCOVERY_FUNCTION,
        )
        self.health_message = f"{self.health_message or ''}\nRECOMMENDED  {note}"
        params = action.get("params") or {}
        if "message" in params:
            params["message"] = f"{params['message']} {note}"
        return action

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
        time (``_run`` takes the attendance lock; a second run is skipped):
        two runs could create the same register, sheet or Moodle session.
        Each course is synced in a savepoint: one that fails is rolled back
        and reported, the others commit.

        :return: a one-line summary (also in the run log), kept on the job
        """
        self.ensure_one()
        if not self.active or not self.sync_attendance:
            return "attendance sync off: nothing done"
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
            outcome["status"] = "skipped" if result.skipped else "ok"
            summary = result.summary()
            if result.errors:
                summary += "\n" + "\n".join(result.errors[:50])
            return summary, {
                "created": result.created + result.sessions_created,
                "updated": result.updated + result.pushed,
                "unchanged": result.unchanged,
                "failed": result.failed,
                "blocked": result.custom + result.unmapped_users + result.no_batch,
                "conflicts": result.conflicts,
            }

        summary, error = self._run("attendance", work)
        status = outcome.get("status") or ("error" if error else None)
        if status:  # None: not run (another one holds the lock, or paused)
            self._attendance_report(status, summary)
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
