import collections

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..const import CHANNEL
from ..services.grades import SyncGrades
from ..services.push import SyncPush
from ..services.sync_services import SERVICES, run_service
from ..sync.push import PHASES
from ._common import job_progress, reopen

ACTIONS = [
    ("create", "To create"),
    ("update", "To update"),
    ("unenrol", "To unenrol"),
    ("blocked", "Blocked"),
    ("waiting", "Waiting for retry"),
    ("held", "Unenrolment held (confirm on the instance)"),
    ("shortened", "Shortened to fit Moodle"),
    ("failed", "Failed"),
]


class MoodleSyncWizard(models.TransientModel):
    """Choose instances, direction and scope; dry-run the plan or run it."""

    _name = "moodle.sync.wizard"
    _description = "Moodle Sync Wizard"

    def _default_instances(self):
        if self.env.context.get("active_model") == "moodle.instance":
            return self.env["moodle.instance"].browse(
                self.env.context.get("active_ids")
            )
        return self.env["moodle.instance"].search([("active", "=", True)])

    instance_ids = fields.Many2many(
        "moodle.instance",
        string="Instances",
        default=lambda self: self._default_instances(),
        required=True,
    )
    direction = fields.Selection(
        [
            ("push", "Push (OpenEduCat to Moodle)"),
            ("pull", "Pull grades and completion (Moodle to OpenEduCat)"),
            ("attendance", "Attendance"),
            ("all", "Everything"),
            ("services", "Chosen sync services"),
        ],
        default="push",
        required=True,
    )
    # The sync services (services/sync_services.py), each runnable alone.
    service_subjects = fields.Boolean(
        string="SyncSubjects",
        default=True,
        help="Departments, programs and subject courses.",
    )
    service_enrollment = fields.Boolean(
        string="SyncEnrollment",
        default=True,
        help="Students and faculty, batch groups, enrolments and unenrolments "
        "(after SyncSubjects when both run).",
    )
    service_grades = fields.Boolean(
        string="SyncGrades",
        help="Gradebook, assignment and quiz grades (and completion when the "
        "instance pulls it with the grades).",
    )
    service_completion = fields.Boolean(string="SyncCompletion")
    service_attendance = fields.Boolean(string="SyncAttendance")
    service_retries = fields.Boolean(
        string="SyncRetries", help="The failed records whose retry is due."
    )
    service_health = fields.Boolean(
        string="SyncHealth", help="What Moodle is and what the token can call."
    )
    service_drift = fields.Boolean(
        string="SyncDrift",
        help="What Moodle changed or lost since the last push (a run pushes "
        "OpenEduCat's version again).",
    )
    do_departments = fields.Boolean(string="Departments", default=True)
    do_programs = fields.Boolean(string="Programs", default=True)
    do_subjects = fields.Boolean(string="Subjects (courses)", default=True)
    do_users = fields.Boolean(string="Students and faculty", default=True)
    do_batches = fields.Boolean(string="Batches (groups)", default=True)
    do_enrolments = fields.Boolean(string="Enrolments", default=True)
    department_ids = fields.Many2many("op.department", string="Only these departments")
    course_ids = fields.Many2many("op.course", string="Only these programs")
    subject_ids = fields.Many2many("op.subject", string="Only these subjects")
    student_ids = fields.Many2many("op.student", string="Only these students")
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("planning", "Planning"),
            ("planned", "Planned"),
            ("running", "Running"),
        ],
        default="draft",
    )
    job_uuid = fields.Char(readonly=True, copy=False)
    line_ids = fields.One2many("moodle.sync.wizard.line", "wizard_id")
    summary = fields.Text(readonly=True)
    started_at = fields.Datetime(readonly=True)
    progress = fields.Text(compute="_compute_progress")

    # === SCOPE === #

    def _phases(self):
        chosen = {
            "departments": self.do_departments,
            "programs": self.do_programs,
            "subjects": self.do_subjects,
            "users": self.do_users,
            "batches": self.do_batches,
            "enrolments": self.do_enrolments,
        }
        phases = [p for p in PHASES if chosen[p]]
        if not phases:
            raise UserError(_("Choose at least one kind of record."))
        return phases

    def _services(self):
        """The chosen services, in the order a full sync runs them."""
        services = [name for name in SERVICES if self[f"service_{name}"]]
        if not services:
            raise UserError(_("Choose at least one sync service."))
        return services

    def _seeds(self):
        seeds = {}
        if self.course_ids:
            seeds["op.course"] = sorted(self.course_ids.ids)
        if self.student_ids:
            seeds["op.student"] = sorted(self.student_ids.ids)
        return seeds or None

    def _in_subject_scope(self, key):
        if not self.subject_ids:
            return True
        return any(f"oec_subj_{s}_course_" in key for s in self.subject_ids.ids)

    # === DRY RUN === #

    def action_dry_run(self):
        """Compute the whole plan in a job (on a large site it reads Moodle for
        longer than a browser request may last) and show it; write nothing on
        either side."""
        self.ensure_one()
        self.env["moodle.instance"]._check_moodle_manager()
        if self.direction in ("push", "all"):
            self._phases()  # nothing chosen: say so now, not in the job
        if self.direction == "services":
            self._services()
        self.line_ids.unlink()
        job = self.with_delay(
            channel=CHANNEL,
            description=_(
                "Moodle dry run: %s", ", ".join(self.instance_ids.mapped("name"))
            ),
        )._job_dry_run()
        self.write(
            {
                "state": "planning",
                "summary": False,
                "job_uuid": job.uuid,
                "started_at": fields.Datetime.now(),
            }
        )
        return reopen(self)

    def _job_dry_run(self):
        """Job: the dry run's plan, written onto the wizard."""
        if not self.exists():
            return "the wizard was closed: nothing to plan"
        self.ensure_one()
        self.env["moodle.instance"]._check_moodle_manager()
        self.line_ids.unlink()
        lines, summary = [], []
        for instance in self.instance_ids:
            client = instance._get_client()
            if self.direction in ("push", "all"):
                lines += self._plan_push(instance, client, summary)
            if self.direction in ("pull", "all"):
                lines += self._plan_pull(instance, client, summary)
            if self.direction in ("attendance", "all"):
                lines += self._plan_attendance(instance, client, summary)
            if self.direction == "services":
                for name in self._services():
                    lines += self._plan_service(instance, client, name, summary)
        self.write(
            {
                "line_ids": [(0, 0, vals) for vals in lines],
                "summary": "\n".join(summary),
                "state": "planned",
            }
        )
        return f"{len(lines)} plan lines"

    def _plan_push(self, instance, client, summary):
        service = SyncPush(instance, client, dry_run=True)
        result = service.run(
            self._phases(), self._seeds(), department_ids=self.department_ids.ids
        )
        return self._push_lines(instance, result, summary)

    def _plan_service(self, instance, client, name, summary):
        """One service's dry run: its plan lines, its line in the summary."""
        service = SERVICES[name]
        if name == "grades":
            return self._plan_pull(instance, client, summary)
        if name == "attendance":
            return self._plan_attendance(instance, client, summary)
        push = name in ("subjects", "enrollment")
        result = run_service(
            name,
            instance,
            client,
            dry_run=True,
            records=self._seeds() if push else None,
            department_ids=self.department_ids.ids if push else None,
        )
        if name in ("subjects", "enrollment", "retries") and result.detail:
            return self._push_lines(
                instance, result.detail, summary, f"{service.title} / "
            )
        summary.append(f"{instance.name} / {service.title}: {result.summary}")
        return [
            dict(line, instance_id=instance.id)
            for line in result.lines
            if self._in_subject_scope(line["key"])
        ]

    def _push_lines(self, instance, result, summary, prefix=""):
        lines = []
        for phase, counts in result.phases.items():
            records = [r for r in counts.records if self._in_subject_scope(r["key"])]
            tally = collections.Counter(r["action"] for r in records)
            summary.append(
                f"{instance.name} / {prefix}{phase}: {tally['create']} to create, "
                f"{tally['update']} to update, {counts.unchanged} unchanged, "
                f"{tally['unenrol']} to unenrol, {tally['blocked']} blocked, "
                f"{tally['waiting']} waiting for retry"
                + (f", {tally['held']} unenrolments held" if tally["held"] else "")
                + (f", {tally['shortened']} shortened" if tally["shortened"] else "")
            )
            lines += [
                {
                    "instance_id": instance.id,
                    "kind": phase,
                    "key": r["key"],
                    "label": r["label"],
                    "action": r["action"],
                    "reason": r["reason"],
                    "res_model": r["res_model"],
                    "res_id": r["res_id"],
                }
                for r in records
            ]
        return lines

    def _plan_pull(self, instance, client, summary):
        result = SyncGrades(instance, client, dry_run=True).pull_all_combined()
        creates = sum(1 for p in result.planned if p["action"] == "create")
        summary.append(
            f"{instance.name} / grades: {creates} to create, "
            f"{len(result.planned) - creates} to update, {result.unchanged} unchanged, "
            f"{result.unmapped_students} unmapped Moodle users; completion: "
            + ", ".join(f"{k} {v}" for k, v in sorted(result.completion.items()))
        )
        return [
            {
                "instance_id": instance.id,
                "kind": "grades",
                "key": p["key"],
                "label": f"{p['marks']} / {p['total']}",
                "action": p["action"],
            }
            for p in result.planned
            if self._in_subject_scope(p["key"])
        ]

    def _plan_attendance(self, instance, client, summary):
        planner = getattr(instance, "_moodle_attendance_dry_run", None)
        if planner is None:
            summary.append(f"{instance.name} / attendance: not available")
            return []
        text, lines = planner(client)
        summary.append(f"{instance.name} / attendance: {text}")
        return [dict(line, instance_id=instance.id) for line in lines]

    # === RUN === #

    def action_run(self):
        """Enqueue the jobs; the wizard then shows how far they got."""
        self.ensure_one()
        self.env["moodle.instance"]._check_moodle_manager()
        started = fields.Datetime.now()
        for instance in self.instance_ids:
            if instance.health_state == "access":
                raise UserError(
                    _(
                        "Instance %s is paused: test its connection first.",
                        instance.name,
                    )
                )
            if self.direction in ("push", "all"):
                instance._enqueue_push(
                    self._phases(),
                    self._seeds(),
                    department_ids=self.department_ids.ids or None,
                )
            if self.direction in ("pull", "all"):
                instance._enqueue_pull()
            if self.direction in ("attendance", "all") and hasattr(
                instance, "_enqueue_attendance"
            ):
                instance._enqueue_attendance()
            if self.direction == "services":
                instance._enqueue_services(
                    self._services(),
                    self._seeds(),
                    department_ids=self.department_ids.ids or None,
                )
        self.write({"state": "running", "started_at": started})
        return reopen(self)

    @api.depends("state", "started_at", "job_uuid")
    def _compute_progress(self):
        for wizard in self:
            if wizard.state == "planning":
                wizard.progress = job_progress(self.env, wizard.job_uuid)
                continue
            if wizard.state != "running":
                wizard.progress = False
                continue
            jobs = (
                self.env["queue.job"]
                .sudo()
                .search(
                    [
                        ("model_name", "=", "moodle.instance"),
                        ("date_created", ">=", wizard.started_at),
                    ]
                )
            )
            states = collections.Counter(jobs.mapped("state"))
            done = states.get("done", 0)
            lines = [
                _("%(done)s of %(total)s jobs done", done=done, total=len(jobs)),
                ", ".join(f"{k}: {v}" for k, v in sorted(states.items())),
            ]
            lines += [
                f"{job.name}: {job.state}" + (f" ({job.result})" if job.result else "")
                for job in jobs[:20]
            ]
            wizard.progress = "\n".join(lines)

    def action_refresh(self):
        self.env["moodle.instance"]._check_moodle_manager()
        return reopen(self)


class MoodleSyncWizardLine(models.TransientModel):
    _name = "moodle.sync.wizard.line"
    _description = "Moodle Sync Wizard Plan Line"
    _order = "instance_id, kind, action, key"

    wizard_id = fields.Many2one("moodle.sync.wizard", required=True, ondelete="cascade")
    instance_id = fields.Many2one("moodle.instance")
    kind = fields.Char()
    key = fields.Char()
    label = fields.Char()
    action = fields.Selection(ACTIONS)
    reason = fields.Char()
    res_model = fields.Char()
    res_id = fields.Integer()
