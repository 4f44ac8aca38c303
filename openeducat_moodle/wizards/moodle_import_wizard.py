import base64
import csv
import io

from odoo import _, api, fields, models

from ..const import CHANNEL
from ..services.push import SyncPush
from ..sync.reconcile import Importer
from ._common import job_progress, reopen

CSV_COLUMNS = [
    "side",
    "kind",
    "key",
    "label",
    "res_model",
    "res_id",
    "moodle_id",
    "reason",
]


class MoodleImportWizard(models.TransientModel):
    """Rebuild the mapping table from Moodle and report the gaps."""

    _name = "moodle.import.wizard"
    _description = "Moodle Initial Import Wizard"

    instance_id = fields.Many2one(
        "moodle.instance",
        required=True,
        default=lambda self: (
            self.env.context.get("active_id")
            if self.env.context.get("active_model") == "moodle.instance"
            else False
        ),
    )
    state = fields.Selection(
        [("draft", "Draft"), ("running", "Running"), ("done", "Done")],
        default="draft",
    )
    summary = fields.Text(readonly=True)
    job_uuid = fields.Char(readonly=True, copy=False)
    progress = fields.Text(compute="_compute_progress")
    line_ids = fields.One2many("moodle.import.wizard.line", "wizard_id")
    csv_file = fields.Binary(string="Gap report (CSV)", readonly=True, attachment=False)
    csv_filename = fields.Char(default="moodle_gap_report.csv")

    @api.depends("state", "job_uuid")
    def _compute_progress(self):
        for wizard in self:
            wizard.progress = (
                job_progress(self.env, wizard.job_uuid)
                if wizard.state == "running"
                else False
            )

    def action_import(self):
        """Enqueue the import: on a large site it reads Moodle for longer than
        a browser request may last. The wizard shows how far it got."""
        self.ensure_one()
        self.instance_id._check_moodle_manager()
        job = self.with_delay(
            channel=CHANNEL,
            description=_("Moodle initial import from %s", self.instance_id.name),
        )._job_import()
        self.write({"state": "running", "job_uuid": job.uuid})
        return reopen(self)

    def action_refresh(self):
        self.env["moodle.instance"]._check_moodle_manager()
        return reopen(self)

    def _job_import(self):
        """Job: read Moodle, rebuild ``moodle.mapping``, build the gap report.

        Waits (without burning retries) while a push of the instance runs.
        """
        if not self.exists():
            return "the wizard was closed: nothing imported"
        self.ensure_one()
        instance = self.instance_id
        instance._check_moodle_manager()
        found = {}

        def work(client):
            service = SyncPush(instance, client)
            service.run(engine=Importer)
            found["engine"] = service.engine
            matched = service.engine.matched
            text = ", ".join(
                f"{kind}: {n} matched" for kind, n in sorted(matched.items())
            )
            return text or "nothing matched", {
                "created": sum(matched.values()),
                "blocked": len(service.engine.gaps),
            }

        summary, error = instance._run("import", work)
        if error is not None or "engine" not in found:
            self.write({"summary": summary, "state": "done"})
            return summary
        gaps = found["engine"].gaps
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_COLUMNS)
        writer.writeheader()
        for gap in gaps:
            writer.writerow(
                {k: gap.get(k) if gap.get(k) is not None else "" for k in CSV_COLUMNS}
            )
        oec = sum(1 for g in gaps if g["side"] == "openeducat")
        self.write(
            {
                "state": "done",
                "summary": (
                    f"{summary}\n{oec} OpenEduCat record(s) with no Moodle match, "
                    f"{len(gaps) - oec} Moodle object(s) with an oec_ idnumber and "
                    "no OpenEduCat record."
                ),
                "line_ids": [
                    (
                        0,
                        0,
                        {k: gap.get(k) for k in CSV_COLUMNS if gap.get(k) is not None},
                    )
                    for gap in gaps
                ],
                "csv_file": base64.b64encode(buffer.getvalue().encode("utf-8")),
            }
        )
        return summary


class MoodleImportWizardLine(models.TransientModel):
    _name = "moodle.import.wizard.line"
    _description = "Moodle Gap Report Line"
    _order = "side, kind, key"

    wizard_id = fields.Many2one(
        "moodle.import.wizard", required=True, ondelete="cascade"
    )
    side = fields.Selection(
        [("openeducat", "In OpenEduCat only"), ("moodle", "In Moodle only")]
    )
    kind = fields.Char()
    key = fields.Char()
    label = fields.Char()
    res_model = fields.Char()
    res_id = fields.Integer()
    moodle_id = fields.Integer()
    reason = fields.Char()
