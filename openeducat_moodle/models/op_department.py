from odoo import api, models

PUSHED_FIELDS = {"name", "code", "parent_id"}


class OpDepartment(models.Model):
    _name = "op.department"
    _inherit = ["op.department", "moodle.binding.mixin"]

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env["moodle.instance"]._moodle_enqueue_push(["departments"], records)
        return records

    def write(self, vals):
        res = super().write(vals)
        if PUSHED_FIELDS & set(vals):
            self.env["moodle.instance"]._moodle_enqueue_push(["departments"], self)
        return res
