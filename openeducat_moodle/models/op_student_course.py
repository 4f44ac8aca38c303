from odoo import api, fields, models

PUSHED_FIELDS = {"student_id", "course_id", "batch_id", "subject_ids", "active"}


class OpStudentCourse(models.Model):
    _name = "op.student.course"
    _inherit = ["op.student.course", "moodle.binding.mixin"]

    # Archiving an enrolment withdraws the student from its Moodle courses.
    active = fields.Boolean(default=True)

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env["moodle.instance"]._moodle_enqueue_push(
            ["users", "enrolments"], records
        )
        return records

    def write(self, vals):
        res = super().write(vals)
        if PUSHED_FIELDS & set(vals):
            self.env["moodle.instance"]._moodle_enqueue_push(
                ["users", "enrolments"], self
            )
        return res

    def unlink(self):
        # Enqueued before the rows go: the job unenrols what they mapped.
        self.env["moodle.instance"]._moodle_enqueue_push(["enrolments"], self)
        return super().unlink()

    def action_moodle_unenrol(self):
        """Withdraw the student from this program's Moodle courses."""
        self.write({"active": False})
