from odoo import api, models

PUSHED_FIELDS = {"name", "code", "course_id", "active"}


class OpBatch(models.Model):
    _name = "op.batch"
    _inherit = ["op.batch", "moodle.binding.mixin"]

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env["moodle.instance"]._moodle_enqueue_push(["batches"], records)
        return records

    def write(self, vals):
        res = super().write(vals)
        if PUSHED_FIELDS & set(vals):
            self.env["moodle.instance"]._moodle_enqueue_push(["batches"], self)
        return res
