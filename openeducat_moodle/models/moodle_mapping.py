import collections

from odoo import _, api, fields, models
from odoo.tools import sql

# Which push phase (re)creates each kind of Moodle object.
PHASE_OF = {
    ("category", "op.department"): "departments",
    ("category", "op.course"): "programs",
    ("course", "op.subject"): "subjects",
    ("user", "op.student"): "users",
    ("user", "op.faculty"): "users",
    ("group", "op.batch"): "batches",
    ("enrolment", "op.student.course"): "enrolments",
    ("enrolment", "op.faculty"): "enrolments",
}


def in_moodle(kind):
    """The domain of a kind's mapping rows whose object exists in Moodle.

    A row keeps its Moodle id while a problem blocks its next update (it is
    then "blocked" or "error", so that it can be found by state); what reads
    Moodle ids (pulls, look-ups) goes by the id, not by the state. The other
    kinds (enrolments, grades, attendance rows) go by the synced state.
    """
    if kind not in ("category", "course", "user", "group"):
        return [("moodle_model", "=", kind), ("state", "=", "synced")]
    return [
        ("moodle_model", "=", kind),
        ("moodle_id", ">", 0),
        ("state", "!=", "retired"),
    ]


MOODLE_MODELS = [
    ("category", "Course category"),
    ("course", "Course"),
    ("group", "Group"),
    ("user", "User"),
    ("enrolment", "Enrolment"),
    ("completion", "Course completion"),
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

    # Indexes: a full push writes a row per Moodle object (125,000 for
    # 20,000 students), so the table keeps only the indexes its look-ups use:
    # (instance, kind, key) unique, (instance, kind, Moodle id) unique,
    # (res_model, res_id) for the OpenEduCat forms, and the retry date.
    instance_id = fields.Many2one("moodle.instance", required=True, ondelete="cascade")
    res_model = fields.Char(string="OpenEduCat Model", required=True)
    res_id = fields.Many2oneReference(
        string="OpenEduCat Record ID",
        model_field="res_model",
        group_operator=False,
    )
    moodle_model = fields.Selection(
        MOODLE_MODELS, string="Moodle Object", required=True
    )
    external_key = fields.Char(required=True)
    moodle_id = fields.Integer(string="Moodle ID", group_operator=False)
    moodle_idnumber = fields.Char(string="Moodle ID Number")
    sync_hash = fields.Char(help="SHA-256 of the last payload synced.")
    state = fields.Selection(
        [
            ("pending", "Pending"),
            ("synced", "Synced"),
            ("error", "Error (will retry)"),
            ("failed", "Permanently failed"),
            ("blocked", "Blocked"),
            ("retired", "Retired (no longer in scope)"),
        ],
        default="pending",
        required=True,
    )
    retry_count = fields.Integer(default=0)
    next_retry_date = fields.Datetime(index="btree_not_null")
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
        cr = self.env.cr
        # Single-column indexes of earlier versions: covered by the ones below
        # or never used, and each one slows every insert down.
        for column in (
            "instance_id",
            "res_model",
            "res_id",
            "moodle_model",
            "external_key",
            "moodle_id",
            "moodle_idnumber",
            "state",
        ):
            sql.drop_index(cr, f"moodle_mapping__{column}_index", self._table)
        cr.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = %s AND indexdef NOT LIKE %s",
            ["moodle_mapping__next_retry_date_index", "%WHERE%"],
        )
        if cr.fetchone():  # recreated as a partial index (btree_not_null)
            sql.drop_index(cr, "moodle_mapping__next_retry_date_index", self._table)
        sql.create_index(
            cr,
            "moodle_mapping_res_idx",
            self._table,
            ['"res_model"', '"res_id"'],
        )
        # One Moodle object maps to one row; enrolments have no Moodle id (0).
        cr.execute(
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
        self.env["moodle.instance"]._check_moodle_manager()
        return {
            "type": "ir.actions.act_window",
            "res_model": self.res_model,
            "res_id": self.res_id,
            "view_mode": "form",
        }

    # === RETRIES === #

    def _moodle_enqueue_retry(self):
        """Enqueue one push per instance for these mappings' records."""
        work = collections.defaultdict(lambda: (set(), collections.defaultdict(set)))
        for mapping in self:
            phase = PHASE_OF.get((mapping.moodle_model, mapping.res_model))
            if not phase:
                continue
            phases, seeds = work[mapping.instance_id]
            phases.add(phase)
            seeds[mapping.res_model].add(mapping.res_id)
        order = [
            "departments",
            "programs",
            "subjects",
            "users",
            "batches",
            "enrolments",
        ]
        for instance, (phases, seeds) in work.items():
            instance._enqueue_push(
                [p for p in order if p in phases],
                {model: sorted(ids) for model, ids in sorted(seeds.items())},
            )

    def action_retry(self):
        """Retry these records now (also the permanently failed ones)."""
        self.env["moodle.instance"]._check_moodle_manager()
        retry = self.filtered(
            lambda m: m.state in ("error", "failed", "blocked", "retired")
        )
        retry.write(
            {
                "state": "error",
                "next_retry_date": fields.Datetime.now(),
                "retry_count": 0,
            }
        )
        retry._moodle_enqueue_retry()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Retry enqueued"),
                "message": _("%s record(s) will be sent again.", len(retry)),
                "type": "info",
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
