from odoo import api, models

PUSHED_FIELDS = {
    "name",
    "first_name",
    "middle_name",
    "last_name",
    "email",
    "active",
    "lang",
    "main_department_id",
}


class OpFaculty(models.Model):
    _name = "op.faculty"
    _inherit = ["op.faculty", "moodle.binding.mixin"]

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env["moodle.instance"]._moodle_enqueue_push(
            ["users", "enrolments"], records
        )
        return records

    def write(self, vals):
        res = super().write(vals)
        instances = self.env["moodle.instance"]
        if "faculty_subject_ids" in vals:
            instances._moodle_enqueue_push(["users", "enrolments"], self)
        elif PUSHED_FIELDS & set(vals):
            instances._moodle_enqueue_push(["users"], self)
        return res
