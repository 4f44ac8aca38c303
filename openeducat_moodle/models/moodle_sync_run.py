from odoo import api, fields, models

KINDS = [
    ("push", "Push"),
    ("grades", "Grade pull"),
    ("completion", "Completion pull"),
    ("attendance", "Attendance"),
    ("health", "Health check"),
    ("drift", "Drift check"),
    ("import", "Initial import"),
]
# One job of a parallel push, linked to the push's run (which sums its parts;
# the dashboard shows that one).
PART_KIND = ("push_part", "Push (part)")


class MoodleSyncRun(models.Model):
    """One sync run: what it did and what it cost, for sync health over time."""

    _name = "moodle.sync.run"
    _description = "Moodle Sync Run"
    _order = "start_date desc, id desc"

    instance_id = fields.Many2one(
        "moodle.instance", required=True, ondelete="cascade", index=True
    )
    kind = fields.Selection(KINDS + [PART_KIND], required=True, index=True)
    start_date = fields.Datetime(required=True, default=fields.Datetime.now, index=True)
    duration = fields.Float(string="Duration (s)", digits=(16, 2), group_operator="avg")
    state = fields.Selection(
        [
            ("running", "Running"),
            ("done", "Done"),
            ("partial", "Partly failed"),
            ("failed", "Failed"),
            ("skipped", "Skipped"),
            ("interrupted", "Interrupted"),
        ],
        default="done",
        required=True,
    )
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    failed = fields.Integer()
    blocked = fields.Integer()
    unenrolled = fields.Integer()
    conflicts = fields.Integer(help="Attendance in both directions: later write won.")
    calls = fields.Integer(string="Moodle Calls")
    calls_detail = fields.Text(string="Calls by Function")
    message = fields.Text()
    # A parallel push: its run sums the runs of its parts.
    parent_run_id = fields.Many2one(
        "moodle.sync.run",
        string="Parallel Push",
        ondelete="cascade",
        index="btree_not_null",
        readonly=True,
    )
    part_run_ids = fields.One2many(
        "moodle.sync.run", "parent_run_id", string="Parts", readonly=True
    )
    part_key = fields.Char(string="Part", readonly=True)
    # The parts' records (mapping keys) and what the first job did itself.
    parallel_plan = fields.Json(readonly=True, copy=False)

    @api.depends("instance_id", "kind", "start_date")
    def _compute_display_name(self):
        kinds = dict(KINDS + [PART_KIND])
        for run in self:
            when = (
                fields.Datetime.to_string(
                    fields.Datetime.context_timestamp(run, run.start_date)
                )
                if run.start_date
                else ""
            )
            run.display_name = f"{kinds.get(run.kind, run.kind)} {when}".strip()

    @api.model
    def _cron_cleanup(self, days=90):
        """Cron (daily): drop run logs older than ``days`` days."""
        limit = fields.Datetime.subtract(fields.Datetime.now(), days=days)
        self.search([("start_date", "<", limit)], limit=50000).unlink()
