import datetime
import hashlib
import json
import logging
import urllib.parse

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import sql

from ..const import CHANNEL
from ..moodle import MoodleClient, MoodleError
from ..moodle.catalogue import FEATURES
from ..services.grades import SyncCompletion, SyncGrades
from ..services.push import SyncPush
from ..sync.reconcile import DriftCheck
from .moodle_mapping import in_moodle

_logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"localhost", "::1", "127.0.0.1"})


def _host(url):
    """The host (and port) a URL sends requests to, for comparisons."""
    return urllib.parse.urlsplit((url or "").strip()).netloc.lower()


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
    # The token is write-only, for everyone: it is kept in a column no field
    # maps (moodle_token), read only by _get_client() to build the client.
    token = fields.Char(
        string="Web Service Token",
        compute="_compute_token",
        inverse="_inverse_token",
        search="_search_token",
        groups="openeducat_moodle.group_moodle_manager",
        copy=False,
        exportable=False,
        help="Write-only: type a token to set or replace it; it is never shown "
        "again. Changing the base URL's host clears it.",
    )
    token_set = fields.Boolean(compute="_compute_token")
    allow_insecure_http = fields.Boolean(
        string="Allow http:// (token sent unencrypted)",
        tracking=True,
        help="Only for a Moodle reached over a private network you trust: over "
        "http:// the token crosses the network in clear. Loopback addresses "
        "(localhost, 127.0.0.1, ::1) need no switch.",
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

    # === MASS UNENROLMENT GUARD === #
    unenrol_limit_percent = fields.Float(
        string="Hold Unenrolments Above (%)",
        default=5.0,
        help="A push that would unenrol more than this share of the instance's "
        "enrolments, or more than the count below (the lower of the two, at "
        "least 10), holds them all until a Moodle Manager confirms. 0 turns this "
        "bound off.",
    )
    unenrol_limit_count = fields.Integer(
        string="Hold Unenrolments Above (count)",
        default=200,
        help="0 turns this bound off; both 0: unenrolments are never held.",
    )
    unenrol_held_keys = fields.Json(readonly=True, copy=False)
    unenrol_held_count = fields.Integer(readonly=True, copy=False)
    unenrol_held_reason = fields.Text(readonly=True, copy=False)
    unenrol_confirmed_keys = fields.Json(readonly=True, copy=False)

    # === GRADES (pulled; Moodle wins) === #
    pull_gradebook = fields.Boolean(string="Pull Gradebook Grades", default=True)
    pull_assignments = fields.Boolean(string="Pull Assignment Grades", default=True)
    pull_quizzes = fields.Boolean(string="Pull Quiz Grades", default=True)
    pull_completion = fields.Boolean(string="Pull Completion Status", default=True)
    completion_schedule = fields.Selection(
        [
            ("with_grades", "With every grade pull"),
            ("separate", "On its own schedule (the completion cron)"),
        ],
        default="with_grades",
        required=True,
        help="Completion takes one call per student and course: large sites may "
        "prefer to run it less often than grades.",
    )
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
    failure_streak = fields.Integer(readonly=True, copy=False)
    backoff_until = fields.Datetime(
        readonly=True,
        copy=False,
        help="Moodle could not be reached: no job runs before this time.",
    )
    moodle_release = fields.Char(readonly=True)
    capabilities_json = fields.Text(readonly=True, copy=False)
    mapping_ids = fields.One2many("moodle.mapping", "instance_id")
    run_ids = fields.One2many("moodle.sync.run", "instance_id")
    category_count = fields.Integer(compute="_compute_mapping_counts")
    course_count = fields.Integer(compute="_compute_mapping_counts")
    user_count = fields.Integer(compute="_compute_mapping_counts")
    group_count = fields.Integer(compute="_compute_mapping_counts")
    enrolment_count = fields.Integer(compute="_compute_mapping_counts")
    pending_count = fields.Integer(compute="_compute_mapping_counts")
    failed_count = fields.Integer(compute="_compute_mapping_counts")
    last_run_id = fields.Many2one("moodle.sync.run", compute="_compute_last_run")

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

    def _compute_mapping_counts(self):
        groups = self.env["moodle.mapping"]._read_group(
            [("instance_id", "in", self.ids)],
            ["instance_id", "moodle_model", "state"],
            ["__count"],
        )
        counts = {}
        for instance, kind, state, count in groups:
            bucket = counts.setdefault(instance.id, {})
            if state == "synced":
                bucket[kind] = bucket.get(kind, 0) + count
            elif state in ("pending", "blocked"):
                bucket["pending"] = bucket.get("pending", 0) + count
            elif state in ("error", "failed"):
                bucket["failed"] = bucket.get("failed", 0) + count
        for instance in self:
            bucket = counts.get(instance.id, {})
            instance.category_count = bucket.get("category", 0)
            instance.course_count = bucket.get("course", 0)
            instance.user_count = bucket.get("user", 0)
            instance.group_count = bucket.get("group", 0)
            instance.enrolment_count = bucket.get("enrolment", 0)
            instance.pending_count = bucket.get("pending", 0)
            instance.failed_count = bucket.get("failed", 0)

    def _compute_last_run(self):
        for instance in self:
            instance.last_run_id = self.env["moodle.sync.run"].search(
                [("instance_id", "=", instance.id)], limit=1
            )

    def action_open_mappings(self):
        """Smart button: the instance's mappings, filtered as the button says."""
        self.ensure_one()
        self._check_moodle_manager()
        kind = self.env.context.get("moodle_kind")
        state = self.env.context.get("moodle_state")
        domain = [("instance_id", "=", self.id)]
        if kind:
            domain.append(("moodle_model", "=", kind))
        if state == "failed":
            domain.append(("state", "in", ("error", "failed")))
        elif state == "pending":
            domain.append(("state", "in", ("pending", "blocked")))
        elif state:
            domain.append(("state", "=", state))
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "openeducat_moodle.action_moodle_mapping"
        )
        action.update(domain=domain, context={"default_instance_id": self.id})
        return action

    def action_open_runs(self):
        self.ensure_one()
        self._check_moodle_manager()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "openeducat_moodle.action_moodle_sync_run"
        )
        action.update(domain=[("instance_id", "=", self.id)])
        return action

    @api.constrains("base_url", "allow_insecure_http")
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
            host = (urllib.parse.urlsplit(url).hostname or "").lower()
            if (
                url.startswith("http://")
                and host not in LOOPBACK_HOSTS
                and not host.startswith("127.")
                and not instance.allow_insecure_http
            ):
                raise ValidationError(
                    _(
                        "%(url)s would send the web-service token unencrypted. Use "
                        "https://, or tick 'Allow http://' for a Moodle reached over a "
                        "private network you trust.",
                        url=url,
                    )
                )

    # === THE TOKEN (write-only) === #

    def init(self):
        cr = self.env.cr
        cr.execute(
            "ALTER TABLE moodle_instance ADD COLUMN IF NOT EXISTS moodle_token varchar"
        )
        # Versions before 17.0.1.2.0 kept it in a column the ORM could read.
        if sql.column_exists(cr, self._table, "token"):
            cr.execute(
                "UPDATE moodle_instance SET moodle_token = token "
                "WHERE moodle_token IS NULL AND token IS NOT NULL"
            )
            cr.execute("ALTER TABLE moodle_instance DROP COLUMN token")

    def _compute_token(self):
        stored = [i for i in self.ids if isinstance(i, int)]
        found = set()
        if stored:
            self.env.cr.execute(
                "SELECT id FROM moodle_instance WHERE id = ANY(%s) "
                "AND COALESCE(moodle_token, '') != ''",
                [stored],
            )
            found = {row[0] for row in self.env.cr.fetchall()}
        for instance in self:
            instance.token = False
            instance.token_set = instance.id in found

    def _search_token(self, operator, value):
        # A search on it would tell whether a guess is right.
        raise UserError(_("The web-service token cannot be searched."))

    def _inverse_token(self):
        for instance in self:
            if instance.token:
                instance._moodle_store_token(instance.token.strip())
        # Never echoed back, not even to the user who typed it.
        self.invalidate_recordset(["token", "token_set"])

    def _moodle_store_token(self, token):
        self.ensure_one()
        self.env.cr.execute(
            "UPDATE moodle_instance SET moodle_token = %s WHERE id = %s",
            [token or None, self.id],
        )

    def _moodle_read_token(self):
        self.ensure_one()
        self.env.cr.execute(
            "SELECT moodle_token FROM moodle_instance WHERE id = %s", [self.id]
        )
        row = self.env.cr.fetchone()
        return row and row[0]

    def write(self, vals):
        moved = self.browse()
        if "base_url" in vals and not vals.get("token"):
            host = _host(vals["base_url"])
            moved = self.filtered(lambda i: _host(i.base_url) != host)
        result = super().write(vals)
        for instance in moved:
            # The token belongs to the old host: never send it to the new one.
            instance._moodle_store_token(None)
            instance.message_post(
                body=_(
                    "The base URL now names another host: the web-service token "
                    "was cleared. Paste the token of the new site."
                )
            )
        if moved:
            moved.invalidate_recordset(["token", "token_set"])
        return result

    @api.constrains("auth_method", "auth_plugin")
    def _check_auth_plugin(self):
        for instance in self:
            if instance.auth_method == "other" and not instance.auth_plugin:
                raise ValidationError(_("Name the Moodle authentication plugin."))

    def export_data(self, fields_to_export):
        """The token never leaves Odoo, not even in an export."""
        self._check_moodle_manager()
        if any(f.split("/")[0] == "token" for f in fields_to_export):
            raise UserError(_("The web-service token cannot be exported."))
        return super().export_data(fields_to_export)

    # === CLIENT === #

    def _get_client(self):
        """Build the Moodle client for this instance.

        The token is write-only: no field returns it. It is read here, and
        only here, from its column, whoever runs the job.

        :rtype: MoodleClient
        :raise UserError: when the instance has no token
        """
        self.ensure_one()
        token = self._moodle_read_token()
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
        """Call core_webservice_get_site_info and report what the token can do;
        look up the student and teacher role ids where Moodle shows them."""
        self.ensure_one()
        self._check_moodle_manager()
        try:
            client = self._get_client()
            caps = client.capabilities()
            roles = self._moodle_lookup_roles(client, caps)
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
                "failure_streak": 0,
                "backoff_until": False,
                **roles,
            }
        )
        # Moodle answers: the jobs held back by a backoff run now.
        self._moodle_release_waiting_jobs()
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

    def _moodle_lookup_roles(self, client, caps):
        """Role ids by shortname, read from the enrolled users of a few mapped
        courses (Moodle has no web service that lists roles)."""
        if "core_enrol_get_enrolled_users" not in caps.site.functions:
            return {}
        courses = self.env["moodle.mapping"].search(
            [("instance_id", "=", self.id), *in_moodle("course")],
            limit=5,
        )
        found = {}
        for course in courses:
            for user in client.get_enrolled_users(
                course.moodle_id, userfields="id,roles"
            ):
                for role in user.get("roles") or []:
                    found.setdefault(role.get("shortname"), role.get("roleid"))
            if "student" in found and "editingteacher" in found:
                break
        values = {}
        if found.get("student"):
            values["student_role_id"] = found["student"]
        if found.get("editingteacher"):
            values["teacher_role_id"] = found["editingteacher"]
        return values

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

    # === RUNS (the rest is in moodle_instance_runs.py) === #

    def _moodle_delay(self, key, description, eta=None):
        self.ensure_one()
        if self.health_state == "access":
            _logger.info("moodle instance %s is paused; %s not enqueued", self.id, key)
            return None
        return self.with_delay(
            channel=CHANNEL,
            eta=self._moodle_eta(eta),
            identity_key=f"moodle:{self.id}:{key}",
            description=description,
        )

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
        for instance in self.sudo().search([("active", "=", True)]):
            instance._enqueue_push(phases, seeds)

    def _enqueue_push(self, phases=None, seeds=None, eta=None, department_ids=None):
        """Enqueue one push job on channel root.moodle.

        The identity key makes a second identical request, while the first is
        still waiting, a no-op.
        """
        self.ensure_one()
        digest = hashlib.sha256(
            json.dumps([phases, seeds, department_ids], sort_keys=True).encode()
        ).hexdigest()[:16]
        what = ", ".join(phases) if phases else _("everything")
        delayed = self._moodle_delay(
            f"push:{digest}",
            _("Moodle push to %(name)s: %(what)s", name=self.name, what=what),
            eta,
        )
        if not delayed:
            return None
        if department_ids:
            return delayed._job_push(phases, seeds, department_ids=department_ids)
        return delayed._job_push(phases, seeds)

    def _job_push(self, phases=None, seeds=None, department_ids=None):
        """Job: push OpenEduCat to this instance.

        One push per instance at a time (see ``_run``): a second one waits,
        without burning its retries, so two jobs never both create the same
        Moodle object.

        :param list phases: the phases to run (``None``: all the instance
            enables)
        :param dict seeds: ``{model: ids}`` the push is about (``None``: all)
        :return: a one-line summary, kept on the job
        """
        # The body is shared with the sync services' push jobs
        # (moodle_instance_services.py).
        return self._moodle_push_job(
            SyncPush, phases, seeds, department_ids, full=not seeds and not phases
        )

    def _moodle_retire_out_of_scope(self, seeds):
        """After a push of ``seeds``: their failed mappings that are due and
        that the push left untouched are no longer pushed (record deleted,
        archived, or outside the departments served). Retried every few
        minutes they would never end: they are retired, with a note."""
        mappings = self.env["moodle.mapping"].sudo()
        mappings.invalidate_model()
        domain = [
            ("instance_id", "=", self.id),
            ("state", "=", "error"),
            ("next_retry_date", "<=", fields.Datetime.now()),
        ]
        stale = mappings.browse()
        for model, ids in (seeds or {}).items():
            stale |= mappings.search(
                domain + [("res_model", "=", model), ("res_id", "in", list(ids))]
            )
        for mapping in stale:
            mapping.write(
                {
                    "state": "retired",
                    "next_retry_date": False,
                    "last_error": _(
                        "No longer pushed: the OpenEduCat record was deleted or "
                        "archived, or is outside the departments this instance "
                        "serves. Last error: %s",
                        mapping.last_error or "",
                    ),
                }
            )
        return stale

    def _moodle_note_unenrolments(self, held, full):
        """Keep what the push held back, and tell the Moodle Managers once.

        A confirmation releases the keys it lists, once: a full push that
        held nothing has used it (or no longer needs it) and it is cleared.
        """
        keys = sorted(held["keys"]) if held else []

        def note(instance):
            if keys == (instance.unenrol_held_keys or []):
                if not keys and full and instance.unenrol_confirmed_keys:
                    instance.unenrol_confirmed_keys = False
                return False
            if not keys and not full:
                # A partial push sees only its own records: it neither holds
                # nor releases what a full push held.
                return False
            instance.write(
                {
                    "unenrol_held_keys": keys or False,
                    "unenrol_held_count": len(keys),
                    "unenrol_held_reason": held["reason"] if held else False,
                    "unenrol_confirmed_keys": False
                    if not keys
                    else instance.unenrol_confirmed_keys,
                }
            )
            return bool(keys)

        if self._moodle_own_transaction(note):
            self._moodle_notify_managers(
                _("Moodle unenrolments held on %s", self.name),
                _(
                    "%(reason)s Check them in the Sync Wizard's dry run, then "
                    "press Release Held Unenrolments on the instance.",
                    reason=held["reason"],
                ),
            )

    def action_release_unenrolments(self):
        """Button: confirm the held unenrolments (those listed now, no others)
        and push them."""
        self.ensure_one()
        self._check_moodle_manager()
        if not self.unenrol_held_keys:
            raise UserError(_("No unenrolment is held on this instance."))
        count = len(self.unenrol_held_keys)
        self.write(
            {
                "unenrol_confirmed_keys": sorted(
                    set(self.unenrol_confirmed_keys or ()) | set(self.unenrol_held_keys)
                ),
                "unenrol_held_keys": False,
                "unenrol_held_count": 0,
                "unenrol_held_reason": False,
            }
        )
        # Every Moodle Manager's to-do about them is done.
        self.sudo().activity_ids.filtered(
            lambda a: a.summary == _("Moodle unenrolments held on %s", self.name)
        ).action_feedback(_("Released by %s", self.env.user.name))
        self._enqueue_push()
        return self._notify(
            _("Unenrolments released"),
            _("%s unenrolments go with the push now enqueued.", count),
            "info",
        )

    def action_push_now(self):
        """Button: enqueue a full push of this instance.

        When the instance is backing off after an outage, Moodle is asked
        first (one call): if it answers, the pause is lifted and the push runs
        now; if not, the push waits for the end of the backoff and the user is
        told when that is.
        """
        self.ensure_one()
        self._check_moodle_manager()
        if self.health_state == "access":
            raise UserError(
                _("This instance is paused: %s Test the connection once it is fixed.")
                % (self.health_message or "")
            )
        if self.backoff_until and self.backoff_until > fields.Datetime.now():
            error = self._moodle_probe_now()
            if error is not None:
                self._enqueue_push()
                return self._notify(
                    _("Moodle still unreachable"),
                    _(
                        "%(err)s The push is enqueued and runs after %(until)s (UTC).",
                        err=error,
                        until=self.backoff_until,
                    ),
                    "warning",
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
        for instance in self.search([("active", "=", True)]):
            if instance._moodle_eta() is None:
                instance._enqueue_push()

    # === RETRIES === #

    def action_retry_failed(self):
        """Button: retry every failed record of this instance now."""
        self.ensure_one()
        self._check_moodle_manager()
        failed = self.env["moodle.mapping"].search(
            [("instance_id", "=", self.id), ("state", "in", ("error", "failed"))]
        )
        return failed.action_retry()

    @api.model
    def _cron_retry_failed(self):
        """Cron (every 5 minutes): re-enqueue the failed records now due."""
        due = self.env["moodle.mapping"].search(
            [
                ("state", "=", "error"),
                ("next_retry_date", "<=", fields.Datetime.now()),
                ("instance_id.active", "=", True),
                ("instance_id.health_state", "!=", "access"),
            ]
        )
        due._moodle_enqueue_retry()

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
        delayed = self._moodle_delay(
            "pull:grades", _("Moodle grade pull from %s", self.name), eta
        )
        return delayed and delayed._job_pull_grades()

    def _job_pull_grades(self):
        """Job: pull grades (and completion) of this instance.

        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pulled"

        def work(client):
            result = SyncGrades(self, client).pull_all_combined()
            for error in result.errors[:20]:
                _logger.warning("moodle grade pull (instance %s): %s", self.id, error)
            summary = (
                f"{result.courses} courses: {result.created} grades created, "
                f"{result.updated} updated, {result.unchanged} unchanged, "
                f"{result.unmapped_students} unmapped students, "
                f"{result.failed_courses} courses failed; completion "
                + ", ".join(f"{k}: {v}" for k, v in sorted(result.completion.items()))
            )
            if result.errors:
                summary += "\n" + "\n".join(result.errors[:50])
            return summary, result.counts()

        return self._run("grades", work)[0]

    def _enqueue_completion(self):
        self.ensure_one()
        delayed = self._moodle_delay(
            "pull:completion", _("Moodle completion pull from %s", self.name)
        )
        return delayed and delayed._job_pull_completion()

    def _job_pull_completion(self):
        """Job: pull course completion alone (instances that run it apart)."""
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pulled"

        def work(client):
            result = SyncCompletion(self, client).run()
            summary = ", ".join(
                f"{k}: {v}" for k, v in sorted(result.completion.items())
            )
            if result.errors:
                summary += "\n" + "\n".join(result.errors[:50])
            return summary or "no enrolments", {
                "updated": sum(result.completion.values()),
                "failed": result.completion.get("error", 0),
            }

        return self._run("completion", work)[0]

    @api.model
    def _cron_completion_pull(self):
        """Cron (every 6 hours): completion for the instances that run it apart."""
        for instance in self.search(
            [("pull_completion", "=", True), ("completion_schedule", "=", "separate")]
        ):
            if instance._moodle_eta() is None:
                instance._enqueue_completion()

    @api.model
    def _cron_grade_pull(self):
        """Cron (every 15 minutes): one grade-pull job per active instance."""
        for instance in self.search([("active", "=", True)]):
            if instance._moodle_eta() is None:
                instance._enqueue_pull()

    # === HEALTH === #

    @api.model
    def _cron_health_check(self):
        """Cron (every 4 hours): one health-check job per active instance."""
        for instance in self.search([("active", "=", True)]):
            instance.with_delay(
                channel=CHANNEL,
                identity_key=f"moodle:{instance.id}:health",
                description=_("Moodle health check of %s", instance.name),
            )._job_health_check()

    def _job_health_check(self):
        """Job: ask Moodle who it is, record its release and capabilities, and
        flag the instance when its last successful sync is too old."""
        self.ensure_one()
        caps = {}

        def work(client):
            caps["value"] = client.capabilities()
            return caps["value"].summary(self._enabled_features()), {}

        summary, error = self._run("health", work)
        if error is not None:
            self._moodle_notify_managers(
                _("Moodle instance %s needs attention", self.name), summary
            )
            return summary
        found = caps["value"]

        def record(instance):
            stale = instance._moodle_is_stale()
            values = {
                "moodle_release": found.site.release,
                "capabilities_json": json.dumps(
                    {"available": found.available, "missing": found.missing}
                ),
                "health_message": summary,
            }
            # A paused instance whose token works again is resumed.
            values["health_state"] = "stale" if stale else "ok"
            instance.write(values)
            return stale, instance.last_sync_date

        stale, last = self._moodle_own_transaction(record)
        if stale:
            self._moodle_notify_managers(
                _("Moodle sync of %s is stale", self.name),
                _(
                    "The last successful sync was at %(last)s (UTC), more than "
                    "%(hours)s hours ago.",
                    last=last or _("never"),
                    hours=self.stale_threshold_hours,
                ),
            )
        return summary

    def _moodle_is_stale(self):
        self.ensure_one()
        if not self.last_sync_date:
            return True
        threshold = datetime.timedelta(hours=self.stale_threshold_hours or 4.0)
        return fields.Datetime.now() - self.last_sync_date > threshold

    def _moodle_notify_managers(self, summary, note):
        """A to-do activity on the instance for each Moodle Manager (once)."""
        group = self.env.ref("openeducat_moodle.group_moodle_manager")
        activity_type = self.env.ref("mail.mail_activity_data_todo")
        open_activities = self.sudo().activity_ids.filtered(
            lambda a: a.summary == summary
        )
        for user in group.users.filtered(lambda u: u.active and not u.share):
            if user in open_activities.user_id:
                continue
            self.sudo().activity_schedule(
                activity_type_id=activity_type.id,
                summary=summary,
                note=note,
                user_id=user.id,
            )

    # === DRIFT === #

    @api.model
    def _cron_drift_check(self):
        """Cron (daily): one drift-check job per active instance."""
        for instance in self.search([("active", "=", True)]):
            delayed = instance._moodle_delay(
                "drift", _("Moodle drift check of %s", instance.name)
            )
            if delayed:
                delayed._job_drift_check()

    def _job_drift_check(self):
        """Job: compare what Moodle holds with what was last pushed.

        Objects changed in Moodle are pushed again (OpenEduCat wins for the
        data it owns); objects deleted in Moodle are reported and recreated
        when their OpenEduCat record is still active.
        """
        self.ensure_one()
        found = {}

        def work(client):
            service = SyncPush(self, client)
            result = service.run(engine=DriftCheck)
            engine = found["engine"] = service.engine
            lines = [
                f"{r['key']}: {r['reason']}" for r in engine.drifted + engine.deleted
            ]
            summary = (
                f"{len(engine.drifted)} changed in Moodle, {len(engine.deleted)} "
                f"deleted in Moodle, {result.total('unchanged')} as pushed"
            )
            if lines:
                summary += "\n" + "\n".join(lines[:200])
            return summary, {
                "updated": len(engine.drifted),
                "unchanged": result.total("unchanged"),
                "failed": len(engine.deleted),
            }

        summary, error = self._run("drift", work)
        engine = found.get("engine")
        if error is None and engine and (engine.drifted or engine.deleted):
            self._enqueue_push()
        return summary
