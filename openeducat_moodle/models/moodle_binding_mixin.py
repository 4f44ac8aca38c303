from odoo import _, api, fields, models

from ..services.push import PARTNER_FIELDS
from ..services.sync_services import services_of


class MoodleBindingMixin(models.AbstractModel):
    """An OpenEduCat model pushed to Moodle: save hooks, and what a record
    shows of its Moodle counterparts.

    A model declares what its saves change, in phases of the push:
    ``_moodle_create_phases`` for a new record, and ``_moodle_write_phases``,
    a list of ``(fields, phases)`` where the first entry whose fields were
    written wins. A save enqueues the sync service that owns those phases
    (SyncSubjects for departments, programs and subjects, SyncEnrollment for
    people, batch groups and enrolments; both when both are concerned,
    SyncEnrollment once SyncSubjects is done). The hooks only enqueue jobs
    (never call Moodle in the user's transaction), and nothing at all under
    ``connector_no_export``.
    """

    _name = "moodle.binding.mixin"
    _description = "Moodle sync state of an OpenEduCat record"
    _moodle_create_phases = ()
    _moodle_write_phases = ()

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        if self._moodle_create_phases:
            records._moodle_enqueue_sync(self._moodle_create_phases)
        return records

    def write(self, vals):
        res = super().write(vals)
        for watched, phases in self._moodle_write_phases:
            if watched & set(vals):
                self._moodle_enqueue_sync(phases)
                break
        return res

    def _moodle_enqueue_sync(self, phases):
        """Enqueue, on every active instance, the sync services that own
        ``phases`` (see :func:`~..services.sync_services.services_of`), about
        these records."""
        self.env["moodle.instance"]._moodle_enqueue_services(services_of(phases), self)

    moodle_sync_state = fields.Selection(
        [
            ("none", "Not in Moodle"),
            ("synced", "In Moodle"),
            ("pending", "Pending"),
            ("blocked", "Not sent"),
            ("error", "Failed"),
        ],
        string="Moodle",
        compute="_compute_moodle_sync_state",
        groups="openeducat_moodle.group_moodle_manager",
    )
    moodle_sync_error = fields.Text(
        string="Moodle Problem",
        compute="_compute_moodle_sync_state",
        groups="openeducat_moodle.group_moodle_manager",
    )

    def _moodle_mappings(self):
        return (
            self.env["moodle.mapping"]
            .sudo()
            .search([("res_model", "=", self._name), ("res_id", "in", self.ids)])
        )

    def _compute_moodle_sync_state(self):
        by_record = {}
        for mapping in self._moodle_mappings():
            by_record.setdefault(mapping.res_id, []).append(mapping)
        rank = ["synced", "pending", "blocked", "error"]
        for record in self:
            mappings = by_record.get(record.id, [])
            states = [
                "error" if m.state in ("error", "failed") else m.state for m in mappings
            ]
            record.moodle_sync_state = max(states, key=rank.index) if states else "none"
            record.moodle_sync_error = (
                "\n".join(
                    f"{m.instance_id.name} / {m.external_key}: {m.last_error}"
                    for m in mappings
                    if m.last_error and m.state != "synced"
                )
                or False
            )

    def action_moodle_mappings(self):
        """Open this record's Moodle mappings."""
        self.ensure_one()
        self.env["moodle.instance"]._check_moodle_manager()
        return {
            "type": "ir.actions.act_window",
            "name": _("Moodle"),
            "res_model": "moodle.mapping",
            "view_mode": "tree,form",
            "domain": [("res_model", "=", self._name), ("res_id", "=", self.id)],
        }


# A person's fields that their Moodle account carries.
PERSON_FIELDS = frozenset(
    {
        "name",
        "first_name",
        "middle_name",
        "last_name",
        "email",
        "active",
        "user_id",
        "lang",
        "main_department_id",
    }
) | frozenset(PARTNER_FIELDS)  # what the reader takes from the partner
