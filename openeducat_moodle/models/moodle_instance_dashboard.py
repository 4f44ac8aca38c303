"""The Moodle Dashboard: every instance on one screen.

One card per instance (``views/moodle_instance_dashboard_views.xml``): its
health, last successful sync, pending and failed records, held unenrolments
and the last run of each kind, with the buttons a Moodle Manager needs. The
fields it shows are computed for all the instances on the screen at once: the
number of queries does not grow with the number of instances.
"""

from odoo import fields, models
from odoo.tools import SQL
from odoo.tools.sql import create_index

from .moodle_sync_run import KINDS

# The kinds of run the dashboard shows, in the run log's order.
RUN_KINDS = tuple(kind for kind, _label in KINDS)

# Odoo's kanban colour indexes: green, yellow, orange, red (0: no colour).
HEALTH_COLORS = {"ok": 10, "stale": 3, "error": 2, "access": 1}


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    dashboard_color = fields.Integer(compute="_compute_dashboard_color")

    # === LAST RUN OF EACH KIND (one pair per kind of moodle.sync.run) === #
    last_push_date = fields.Datetime(string="Last Push", compute="_compute_last_runs")
    last_push_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Push Result",
        compute="_compute_last_runs",
    )
    last_grades_date = fields.Datetime(
        string="Last Grade Pull", compute="_compute_last_runs"
    )
    last_grades_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Grade Pull Result",
        compute="_compute_last_runs",
    )
    last_completion_date = fields.Datetime(
        string="Last Completion Pull", compute="_compute_last_runs"
    )
    last_completion_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Completion Pull Result",
        compute="_compute_last_runs",
    )
    last_attendance_date = fields.Datetime(
        string="Last Attendance Run", compute="_compute_last_runs"
    )
    last_attendance_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Attendance Run Result",
        compute="_compute_last_runs",
    )
    last_health_date = fields.Datetime(
        string="Last Health Check", compute="_compute_last_runs"
    )
    last_health_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Health Check Result",
        compute="_compute_last_runs",
    )
    last_drift_date = fields.Datetime(
        string="Last Drift Check", compute="_compute_last_runs"
    )
    last_drift_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Drift Check Result",
        compute="_compute_last_runs",
    )
    last_import_date = fields.Datetime(
        string="Last Initial Import", compute="_compute_last_runs"
    )
    last_import_state = fields.Selection(
        selection="_selection_run_state",
        string="Last Initial Import Result",
        compute="_compute_last_runs",
    )

    def _selection_run_state(self):
        # The run log's states, with their translated labels.
        field = self.env["moodle.sync.run"]._fields["state"]
        return field._description_selection(self.env)

    def _compute_dashboard_color(self):
        for instance in self:
            instance.dashboard_color = HEALTH_COLORS.get(instance.health_state, 0)

    def _compute_last_runs(self):
        found = self._moodle_last_runs()
        for instance in self:
            runs = found.get(instance._origin.id, {})
            for kind in RUN_KINDS:
                date, state = runs.get(kind, (False, False))
                instance[f"last_{kind}_date"] = date
                instance[f"last_{kind}_state"] = state

    def _moodle_last_runs(self):
        """The latest run of each kind of each of these instances, in one query.

        One lateral lookup per instance and kind, each served by the index on
        ``(instance_id, kind, start_date, id)``: the run log keeps 90 days of
        runs, which the dashboard never reads in full.

        :return: ``{instance id: {kind: (start date, state)}}``
        :rtype: dict
        """
        ids = [i for i in self._origin.ids if i]
        if not ids:
            return {}
        runs = self.env["moodle.sync.run"]
        runs.flush_model(["instance_id", "kind", "start_date", "state"])
        # The run log's own search, so that its access rules apply.
        query = runs._search([])
        table = query.table
        query.add_where(
            SQL(
                "%s = ids.id AND %s = kinds.kind",
                SQL.identifier(table, "instance_id"),
                SQL.identifier(table, "kind"),
            )
        )
        query.order = SQL(
            "%s DESC, %s DESC",
            SQL.identifier(table, "start_date"),
            SQL.identifier(table, "id"),
        )
        query.limit = 1
        self.env.cr.execute(
            SQL(
                "SELECT ids.id, kinds.kind, last.start_date, last.state "
                "FROM unnest(%s) AS ids(id) CROSS JOIN unnest(%s) AS kinds(kind) "
                "CROSS JOIN LATERAL (%s) AS last",
                ids,
                list(RUN_KINDS),
                query.select(
                    SQL.identifier(table, "start_date"),
                    SQL.identifier(table, "state"),
                ),
            )
        )
        found = {}
        for instance_id, kind, start_date, state in self.env.cr.fetchall():
            found.setdefault(instance_id, {})[kind] = (start_date, state)
        return found


class MoodleSyncRun(models.Model):
    _inherit = "moodle.sync.run"

    def init(self):
        result = super().init()
        # The dashboard's lookup of the latest run of each instance and kind.
        create_index(
            self.env.cr,
            "moodle_sync_run_instance_kind_start_index",
            self._table,
            ["instance_id", "kind", "start_date DESC", "id DESC"],
        )
        return result
