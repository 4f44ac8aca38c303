from odoo import api, models

PUSHED_FIELDS = {
    "name",
    "first_name",
    "middle_name",
    "last_name",
    "email",
    "active",
    "user_id",
    "lang",
}


class OpStudent(models.Model):
    _name = "op.student"
    _inherit = ["op.student", "moodle.binding.mixin"]

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env["moodle.instance"]._moodle_enqueue_push(["users"], records)
        return records

    def write(self, vals):
        res = super().write(vals)
        if PUSHED_FIELDS & set(vals):
            self.env["moodle.instance"]._moodle_enqueue_push(["users"], self)
        return res
