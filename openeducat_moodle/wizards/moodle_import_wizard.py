import base64
import csv
import io

from odoo import _, api, fields, models
from odoo.exceptions import UserError

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
    """Rebuild the mapping table from Moodle and report the gaps; list the
    existing Moodle accounts that match a person by email address or username,
    for a Moodle Manager to approve (or refuse) their adoption."""

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
    line_ids = fields.One2many(
        "moodle.import.wizard.line",
        "wizard_id",
        domain=[("side", "in", ("openeducat", "moodle"))],
    )
    candidate_ids = fields.One2many(
        "moodle.import.wizard.line",
        "wizard_id",
        string="Existing Moodle Accounts to Review",
        domain=[("side", "=", "candidate")],
    )
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
        candidates = found["engine"].candidates
        text = (
            f"{summary}\n{oec} OpenEduCat record(s) with no Moodle match, "
            f"{len(gaps) - oec} Moodle object(s) with an oec_ idnumber and "
            "no OpenEduCat record."
        )
        if candidates:
            text += (
                f"\n{len(candidates)} existing Moodle account(s) match a person by "
                "email address or username: review them below."
            )
        self.write(
            {
                "state": "done",
                "summary": text,
                "line_ids": [
                    (
                        0,
                        0,
                        {k: gap.get(k) for k in CSV_COLUMNS if gap.get(k) is not None},
                    )
                    for gap in gaps
                ],
                "candidate_ids": [
                    (0, 0, self._candidate_values(candidate))
                    for candidate in candidates
                ],
                "csv_file": base64.b64encode(buffer.getvalue().encode("utf-8")),
            }
        )
        return summary

    @staticmethod
    def _candidate_values(candidate):
        return {
            "side": "candidate",
            "kind": "user",
            "key": candidate["key"],
            "label": candidate["label"],
            "res_model": candidate["res_model"],
            "res_id": candidate["res_id"],
            "moodle_id": candidate["moodle_id"],
            "moodle_username": candidate["username"],
            "moodle_email": candidate["email"],
            "match": candidate["match"],
            "rights": candidate.get("rights") or False,
            "reason": candidate.get("problem") or False,
            "decision": candidate.get("decision") or False,
        }

    def action_apply_decisions(self):
        """Button: keep the Moodle Manager's decision on each reviewed account
        on the person's mapping (approved: the next push adopts it, if it
        still matches and carries none of the connector's idnumbers; someone
        else: it is never adopted for that person), and push those people.

        :raise UserError: no decision chosen, or two accounts approved for
            one person
        """
        self.ensure_one()
        self.instance_id._check_moodle_manager()
        lines = self.candidate_ids.filtered("decision")
        if not lines:
            raise UserError(_("Choose Adopt or Someone Else on at least one line."))
        decisions = {}
        for line in lines:
            decision = decisions.setdefault(line.key, {"separate": set()})
            decision["line"] = line
            if line.decision == "separate":
                decision["separate"].add(line.moodle_id)
            elif decision.get("moodle_id") not in (None, line.moodle_id):
                raise UserError(
                    _("Approve one Moodle account at most for %s.", line.label)
                )
            else:
                decision["moodle_id"] = line.moodle_id
        seeds = {}
        for key, decision in decisions.items():
            self._moodle_keep_decision(key, decision)
            line = decision["line"]
            seeds.setdefault(line.res_model, set()).add(line.res_id)
        self.instance_id._enqueue_push(
            ["users", "enrolments"],
            {model: sorted(ids) for model, ids in sorted(seeds.items())},
        )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Decisions kept"),
                "message": _(
                    "%s person(s) reviewed; a push of them is enqueued.",
                    len(decisions),
                ),
                "type": "info",
            },
        }

    def _moodle_keep_decision(self, key, decision):
        """Write one person's decision on its user mapping (created, blocked,
        when the person has none yet)."""
        line = decision["line"]
        mappings = self.env["moodle.mapping"]
        mapping = mappings.search(
            [
                ("instance_id", "=", self.instance_id.id),
                ("moodle_model", "=", "user"),
                ("external_key", "=", key),
            ],
            limit=1,
        )
        if not mapping:
            mapping = mappings.create(
                {
                    "instance_id": self.instance_id.id,
                    "moodle_model": "user",
                    "external_key": key,
                    "moodle_idnumber": key,
                    "res_model": line.res_model,
                    "res_id": line.res_id,
                    "state": "blocked",
                }
            )
        extra = dict(mapping.extra_data or {})
        extra["adopt"] = {
            "moodle_id": decision.get("moodle_id"),
            "separate": sorted(decision["separate"]),
            "by": self.env.user.login,
            "at": fields.Datetime.now().isoformat(timespec="seconds"),
        }
        mapping.write({"extra_data": extra})


class MoodleImportWizardLine(models.TransientModel):
    _name = "moodle.import.wizard.line"
    _description = "Moodle Gap Report Line"
    _order = "side, kind, key"

    wizard_id = fields.Many2one(
        "moodle.import.wizard", required=True, ondelete="cascade"
    )
    side = fields.Selection(
        [
            ("openeducat", "In OpenEduCat only"),
            ("moodle", "In Moodle only"),
            ("candidate", "Existing Moodle account to review"),
        ]
    )
    kind = fields.Char()
    key = fields.Char()
    label = fields.Char()
    res_model = fields.Char()
    res_id = fields.Integer()
    moodle_id = fields.Integer()
    reason = fields.Char()
    # An existing account that matches a person (side "candidate").
    moodle_username = fields.Char()
    moodle_email = fields.Char()
    match = fields.Char(string="Matched By")
    rights = fields.Char(string="What Moodle Shows It Can Do")
    decision = fields.Selection(
        [("adopt", "Adopt for this person"), ("separate", "Someone else")]
    )
