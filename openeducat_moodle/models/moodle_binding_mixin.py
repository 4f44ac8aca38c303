from odoo import _, fields, models


class MoodleBindingMixin(models.AbstractModel):
    """What an OpenEduCat record shows of its Moodle counterparts."""

    _name = "moodle.binding.mixin"
    _description = "Moodle sync state of an OpenEduCat record"

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
        return {
            "type": "ir.actions.act_window",
            "name": _("Moodle"),
            "res_model": "moodle.mapping",
            "view_mode": "tree,form",
            "domain": [("res_model", "=", self._name), ("res_id", "=", self.id)],
        }
