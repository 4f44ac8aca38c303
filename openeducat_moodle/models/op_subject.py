from odoo import models

PUSHED_FIELDS = {"name", "code", "department_id", "active"}


class OpSubject(models.Model):
    _name = "op.subject"
    _inherit = ["op.subject", "moodle.binding.mixin"]

    def write(self, vals):
        res = super().write(vals)
        if PUSHED_FIELDS & set(vals):
            self.env["moodle.instance"]._moodle_enqueue_push(["subjects"], self)
        return res
