from odoo import _, api, fields, models

MOODLE_MODELS = [
    ("category", "Course category"),
    ("course", "Course"),
    ("group", "Group"),
    ("user", "User"),
    ("enrolment", "Enrolment"),
    ("grade", "Grade"),
]


class MoodleMapping(models.Model):
    """One OpenEduCat record's counterpart on one Moodle instance.

    ``external_key`` is deterministic (``oec_dept_42``,
    ``oec_student_5@oec_subj_15_course_7``…), so the table can be rebuilt from
    Moodle alone; ``moodle_idnumber`` is the idnumber carried in Moodle.
    """

    _name = "moodle.mapping"
    _description = "Moodle Mapping"
    _order = "instance_id, moodle_model, id"
    _rec_name = "external_key"

    instance_id = fields.Many2one(
        "moodle.instance", required=True, ondelete="cascade", index=True
    )
    res_model = fields.Char(string="OpenEduCat Model", required=True, index=True)
    res_id = fields.Many2oneReference(
        string="OpenEduCat Record ID", model_field="res_model", index=True
    )
    moodle_model = fields.Selection(
        MOODLE_MODELS, string="Moodle Object", required=True, index=True
    )
    external_key = fields.Char(required=True, index=True)
    moodle_id = fields.Integer(string="Moodle ID", index=True)
    moodle_idnumber = fields.Char(string="Moodle ID Number", index=True)
    sync_hash = fields.Char(help="SHA-256 of the last payload synced.")
    state = fields.Selection(
        [
            ("pending", "Pending"),
            ("synced", "Synced"),
            ("error", "Error (will retry)"),
            ("failed", "Permanently failed"),
            ("blocked", "Blocked"),
        ],
        default="pending",
        required=True,
        index=True,
    )
    retry_count = fields.Integer(default=0)
    next_retry_date = fields.Datetime(index=True)
    last_error = fields.Text()
    last_sync_date = fields.Datetime()
    extra_data = fields.Json()
    record_name = fields.Char(compute="_compute_record_name")

    _sql_constraints = [
        (
            "key_unique",
            "UNIQUE(instance_id, moodle_model, external_key)",
            "This OpenEduCat record is already mapped on this instance.",
        ),
    ]

    def init(self):
        # One Moodle object maps to one row; enrolments have no Moodle id (0).
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS moodle_mapping_moodle_id_uniq
            ON moodle_mapping (instance_id, moodle_model, moodle_id)
            WHERE moodle_id IS NOT NULL AND moodle_id != 0
            """
        )

    @api.depends("res_model", "res_id")
    def _compute_record_name(self):
        for mapping in self:
            name = False
            if mapping.res_model in self.env and mapping.res_id:
                record = self.env[mapping.res_model].browse(mapping.res_id).exists()
                name = record.display_name if record else _("(deleted)")
            mapping.record_name = name

    def action_open_record(self):
        """Open the OpenEduCat record this row maps."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": self.res_model,
            "res_id": self.res_id,
            "view_mode": "form",
        }
