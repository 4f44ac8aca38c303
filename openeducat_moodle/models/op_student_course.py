from odoo import fields, models


class OpStudentCourse(models.Model):
    _name = "op.student.course"
    _inherit = ["op.student.course", "moodle.binding.mixin"]
    _moodle_create_phases = ("users", "enrolments")
    _moodle_write_phases = [
        (
            frozenset({"student_id", "course_id", "batch_id", "subject_ids", "active"}),
            ("users", "enrolments"),
        ),
    ]

    # Archiving an enrolment withdraws the student from its Moodle courses.
    active = fields.Boolean(default=True)

    def unlink(self):
        # Enqueued before the rows go: the job unenrols what they mapped.
        self.env["moodle.instance"]._moodle_enqueue_push(["enrolments"], self)
        return super().unlink()

    def action_moodle_unenrol(self):
        """Withdraw the student from this program's Moodle courses."""
        self.write({"active": False})
