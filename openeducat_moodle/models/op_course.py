from odoo import api, models

CATEGORY_FIELDS = {"name", "code", "department_id", "active"}


class OpCourse(models.Model):
    _name = "op.course"
    _inherit = ["op.course", "moodle.binding.mixin"]

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env["moodle.instance"]._moodle_enqueue_push(
            ["programs", "subjects", "batches"], records
        )
        return records

    def write(self, vals):
        res = super().write(vals)
        instances = self.env["moodle.instance"]
        if "subject_ids" in vals:
            # New subjects become courses, with the batch groups and the
            # enrolments of students who have not chosen subjects yet.
            instances._moodle_enqueue_push(
                ["programs", "subjects", "batches", "enrolments"], self
            )
        elif CATEGORY_FIELDS & set(vals):
            instances._moodle_enqueue_push(["programs", "subjects"], self)
        return res
