import hashlib
import json
import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from ..const import CHANNEL
from ..moodle import MoodleAccessError, MoodleClient, MoodleError, MoodleTransientError
from ..moodle.catalogue import FEATURES
from ..services.grades import SyncGrades
from ..services.push import SyncPush

_logger = logging.getLogger(__name__)

AUTH_METHODS = [
    ("manual", "Moodle accounts (Moodle generates and mails a password)"),
    ("oauth2", "OAuth 2 (single sign-on)"),
    ("saml2", "SAML2 (single sign-on)"),
    ("ldap", "LDAP"),
    ("cas", "CAS"),
    ("shibboleth", "Shibboleth"),
    ("other", "Other plugin"),
]


class MoodleInstance(models.Model):
    """A Moodle site the connector keeps in step with OpenEduCat."""

    _name = "moodle.instance"
    _description = "Moodle Instance"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "sequence, name"

    # === CONNECTION === #
    name = fields.Char(required=True, tracking=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True, tracking=True)
    base_url = fields.Char(
        string="Base URL",
        required=True,
        tracking=True,
        help="Moodle's wwwroot, exactly as Moodle knows it, e.g. "
        "https://lms.example.edu (another host name gets a redirect).",
    )
    # The token is only readable by Moodle Managers, never copied; the client is
    # built in _get_client(), the one place it is read.
    token = fields.Char(
        string="Web Service Token",
        groups="openeducat_moodle.group_moodle_manager",
        copy=False,
    )
    connect_timeout = fields.Integer(default=10, help="Seconds.")
    read_timeout = fields.Integer(default=120, help="Seconds.")
    verify_tls = fields.Boolean(
        string="Verify TLS Certificate",
        default=True,
        help="Turn off only for a test site with a self-signed certificate.",
    )
    batch_size = fields.Integer(
        default=100, help="Most records per write call to Moodle."
    )
    max_fields = fields.Integer(
        string="Max Form Fields",
        default=2000,
        help="Most form fields per request. Keep well below the site's PHP "
        "max_input_vars (Moodle requires at least 5000): PHP silently drops the "
        "fields beyond it.",
    )

    # === WHAT IS SYNCED === #
    department_ids = fields.Many2many(
        "op.department",
        string="Departments Served",
        help="Leave empty to serve every department.",
    )
    push_structure = fields.Boolean(
        string="Push Departments, Programs and Subjects", default=True
    )
    push_users = fields.Boolean(string="Push Students and Faculty", default=True)
    push_groups = fields.Boolean(string="Push Batches as Groups", default=True)
    push_enrolments = fields.Boolean(default=True)
    sync_attendance = fields.Boolean(default=True)
    sync_attendance_from = fields.Selection(
        [
            ("moodle", "Moodle (pull into OpenEduCat)"),
            ("oec", "OpenEduCat (push to Moodle)"),
            ("both", "Both (last write wins)"),
        ],
        string="Attendance Source",
        default="moodle",
        required=True,
    )
    auth_method = fields.Selection(
        AUTH_METHODS,
        string="New Accounts Log In With",
        default="manual",
        required=True,
    )
    auth_plugin = fields.Char(
        help="Moodle authentication plugin name, when 'Other plugin' is chosen."
    )
    student_role_id = fields.Integer(
        string="Moodle Student Role ID",
        default=5,
        help="Role id of 'student' on this Moodle site. 'Test Connection' looks it "
        "up from an enrolled user when it can.",
    )
    teacher_role_id = fields.Integer(
        string="Moodle Teacher Role ID",
        default=3,
        help="Role id of 'editingteacher' on this Moodle site.",
    )

    # === GRADES (pulled; Moodle wins) === #
    pull_gradebook = fields.Boolean(string="Pull Gradebook Grades", default=True)
    pull_assignments = fields.Boolean(string="Pull Assignment Grades", default=True)
    pull_quizzes = fields.Boolean(string="Pull Quiz Grades", default=True)
    pull_completion = fields.Boolean(string="Pull Completion Status", default=True)
    grade_scale_type = fields.Selection(
        [("percentage", "Percentage"), ("letter", "Letter"), ("points", "Points")],
        default="percentage",
        required=True,
    )
    pass_threshold = fields.Float(string="Pass Threshold %", default=50.0)
    grade_scale_line_ids = fields.One2many(
        "moodle.grade.scale.line", "instance_id", string="Grade Scale", copy=True
    )

    # === HEALTH === #
    stale_threshold_hours = fields.Float(string="Stale After (hours)", default=4.0)
    last_sync_date = fields.Datetime(string="Last Successful Sync", readonly=True)
    health_state = fields.Selection(
        [
            ("unknown", "Not checked"),
            ("ok", "Healthy"),
            ("stale", "Stale"),
            ("error", "Unreachable"),
            ("access", "Needs attention"),
        ],
        default="unknown",
        readonly=True,
        tracking=True,
    )
    health_message = fields.Text(readonly=True)
    moodle_release = fields.Char(readonly=True)
    capabilities_json = fields.Text(readonly=True, copy=False)
    mapping_ids = fields.One2many("moodle.mapping", "instance_id")

    _sql_constraints = [
        (
            "pass_threshold_range",
            "CHECK(pass_threshold >= 0 AND pass_threshold <= 100)",
            "The pass threshold is a percentage between 0 and 100.",
        ),
        ("batch_size_positive", "CHECK(batch_size > 0)", "Batch size must be > 0."),
        (
            "max_fields_sane",
            "CHECK(max_fields >= 100)",
            "Max form fields must be at least 100.",
        ),
    ]

    @api.constrains("base_url")
    def _check_base_url(self):
        for instance in self:
            url = (instance.base_url or "").strip()
            if not url.startswith(("http://", "https://")):
                raise ValidationError(
                    _("The base URL must start with http:// or https://.")
                )
            if "/webservice/" in url:
                raise ValidationError(
                    _("Give Moodle's base URL (wwwroot), not the web-service endpoint.")
                )

    @api.constrains("auth_method", "auth_plugin")
    def _check_auth_plugin(self):
        for instance in self:
            if instance.auth_method == "other" and not instance.auth_plugin:
                raise ValidationError(_("Name the Moodle authentication plugin."))

    # === CLIENT === #

    def _get_client(self):
        """Build the Moodle client for this instance.

        The token field is restricted to Moodle Managers; jobs and crons run as
        other users, so it is read here, and only here, with sudo().

        :rtype: MoodleClient
        :raise UserError: when the instance has no token
        """
        self.ensure_one()
        token = self.sudo().token
        if not token:
            raise UserError(_("Instance %s has no web-service token.", self.name))
        return MoodleClient(
            self.base_url,
            token,
            connect_timeout=self.connect_timeout or 10,
            read_timeout=self.read_timeout or 120,
            verify=self.verify_tls,
            batch_size=self.batch_size or 100,
            max_fields=self.max_fields or 2000,
        )

    def _moodle_auth(self):
        self.ensure_one()
        if self.auth_method == "other":
            return self.auth_plugin
        return self.auth_method

    # === ACTIONS === #

    def action_test_connection(self):
        """Call core_webservice_get_site_info and report what the token can do."""
        self.ensure_one()
        try:
            caps = self._get_client().capabilities()
        except MoodleError as err:
            self.write(
                {
                    "health_state": "access" if err.kind == "access" else "error",
                    "health_message": str(err),
                }
            )
            return self._notify(_("Connection failed"), str(err), "danger")
        self.write(
            {
                "moodle_release": caps.site.release,
                "capabilities_json": json.dumps(
                    {"available": caps.available, "missing": caps.missing}
                ),
                "health_state": "ok",
                "health_message": caps.summary(self._enabled_features()),
            }
        )
        missing = caps.missing_for(self._enabled_features())
        if missing:
            message = _(
                "Connected to Moodle %(release)s, but the service lacks: %(names)s",
                release=caps.site.release,
                names=", ".join(missing),
            )
            return self._notify(_("Functions missing"), message, "warning")
        return self._notify(
            _("Connection OK"),
            _("Moodle %s: every enabled feature is available.", caps.site.release),
            "success",
        )

    def _enabled_features(self):
        self.ensure_one()
        features = ["connection"]
        if self.push_structure:
            features += ["categories", "courses"]
        if self.push_users:
            features.append("users")
        if self.push_groups:
            features.append("groups")
        if self.push_enrolments:
            features.append("enrolments")
        if self.sync_attendance:
            features.append("attendance")
        return [f for f in features if f in FEATURES]

    def _notify(self, title, message, kind):
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": title,
                "message": message,
                "type": kind,
                "sticky": kind != "success",
            },
        }

    # === PUSH === #

    @api.model
    def _moodle_enqueue_push(self, phases, records):
        """Enqueue a push of ``records`` on every active instance.

        Called by the save hooks of OpenEduCat models; never calls Moodle in
        the user's transaction, and does nothing under ``connector_no_export``
        (set by every pull, so that what Moodle sent is not pushed back).
        """
        if self.env.context.get("connector_no_export") or not records:
            return
        seeds = {records._name: sorted(records.ids)}
        for instance in self.sudo().search([]):
            instance._enqueue_push(phases, seeds)

    def _enqueue_push(self, phases=None, seeds=None, eta=None):
        """Enqueue one push job on channel root.moodle.

        The identity key makes a second identical request, while the first is
        still waiting, a no-op.
        """
        self.ensure_one()
        if self.health_state == "access":
            _logger.info("moodle instance %s is paused; push not enqueued", self.id)
            return None
        digest = hashlib.sha256(
            json.dumps([phases, seeds], sort_keys=True).encode()
        ).hexdigest()[:16]
        what = ", ".join(phases) if phases else _("everything")
        return self.with_delay(
            channel=CHANNEL,
            eta=eta,
            identity_key=f"moodle:{self.id}:push:{digest}",
            description=_(
                "Moodle push to %(name)s: %(what)s", name=self.name, what=what
            ),
        )._job_push(phases, seeds)

    def _job_push(self, phases=None, seeds=None):
        """Job: push OpenEduCat to this instance.

        :param list phases: the phases to run (``None``: all the instance
            enables)
        :param dict seeds: ``{model: ids}`` the push is about (``None``: all)
        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pushed"
        client = self._get_client()
        try:
            result = SyncPush(self, client).run(phases, seeds)
        except MoodleAccessError as err:
            self._moodle_flag(err)
            return f"paused: {err}"
        except MoodleTransientError as err:
            # What succeeded is stored with this job's commit; the rest is
            # tried again in a new job once Moodle may be back.
            self._moodle_flag(err)
            delay = max(int(err.retry_after or 0), 300)
            self._enqueue_push(phases, seeds, eta=delay)
            return f"Moodle unreachable, retrying in {delay} s: {err}"
        self.sudo().write(
            {
                "last_sync_date": fields.Datetime.now(),
                "health_state": "ok",
            }
        )
        return ", ".join(
            f"{name}: {p.created} created, {p.updated} updated, "
            f"{p.unchanged} unchanged, {p.failed} failed, {p.blocked} blocked"
            + (f", {p.unenrolled} unenrolled" if p.unenrolled else "")
            for name, p in result.phases.items()
        )

    def _moodle_flag(self, err):
        """Record a failure that concerns the whole instance."""
        state = "access" if isinstance(err, MoodleAccessError) else "error"
        self.sudo().write({"health_state": state, "health_message": str(err)})

    def action_push_now(self):
        """Button: enqueue a full push of this instance."""
        self.ensure_one()
        if self.health_state == "access":
            raise UserError(
                _("This instance is paused: %s Test the connection once it is fixed.")
                % (self.health_message or "")
            )
        self._enqueue_push()
        return self._notify(
            _("Push enqueued"),
            _("A full push to %s runs in the background.", self.name),
            "info",
        )

    @api.model
    def _cron_full_push_sync(self):
        """Cron (hourly): enqueue a full push of every active instance."""
        for instance in self.search([]):
            instance._enqueue_push()

    # === PULL === #

    def _grade_settings(self):
        self.ensure_one()
        return {
            "scale": self.grade_scale_type,
            "threshold": self.pass_threshold,
            "bands": [
                (line.letter, line.min_percent, line.max_percent)
                for line in self.grade_scale_line_ids
            ],
        }

    def _check_moodle_manager(self):
        if not self.env.user.has_group("openeducat_moodle.group_moodle_manager"):
            raise AccessError(_("Only Moodle Managers can run a Moodle sync."))

    def action_pull_grades_now(self):
        """Button (also callable over XML-RPC by a Moodle Manager): enqueue a
        grade pull of these instances."""
        self._check_moodle_manager()
        for instance in self:
            instance._enqueue_pull()
        return self._notify(
            _("Grade pull enqueued"),
            _("Grades are pulled from Moodle in the background."),
            "info",
        )

    def _enqueue_pull(self, eta=None):
        self.ensure_one()
        if self.health_state == "access":
            return None
        return self.with_delay(
            channel=CHANNEL,
            eta=eta,
            identity_key=f"moodle:{self.id}:pull:grades",
            description=_("Moodle grade pull from %s", self.name),
        )._job_pull_grades()

    def _job_pull_grades(self):
        """Job: pull grades (and completion) of this instance.

        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pulled"
        try:
            result = SyncGrades(self, self._get_client()).pull_all_combined()
        except MoodleAccessError as err:
            self._moodle_flag(err)
            return f"paused: {err}"
        except MoodleTransientError as err:
            self._moodle_flag(err)
            return f"Moodle unreachable, the next scheduled pull will retry: {err}"
        self.sudo().write(
            {"last_sync_date": fields.Datetime.now(), "health_state": "ok"}
        )
        for error in result.errors[:20]:
            _logger.warning("moodle grade pull (instance %s): %s", self.id, error)
        return (
            f"{result.courses} courses: {result.created} grades created, "
            f"{result.updated} updated, {result.unchanged} unchanged, "
            f"{result.unmapped_students} unmapped students, "
            f"{result.failed_courses} courses failed; completion "
            + ", ".join(f"{k}: {v}" for k, v in sorted(result.completion.items()))
        )

    @api.model
    def _cron_grade_pull(self):
        """Cron (every 15 minutes): one grade-pull job per active instance."""
        for instance in self.search([]):
            instance._enqueue_pull()
