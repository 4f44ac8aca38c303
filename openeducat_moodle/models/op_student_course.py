from odoo import _, fields, models


class OpStudentCourse(models.Model):
    _name = "op.student.course"
    _inherit = ["op.student.course", "moodle.binding.mixin"]
    _moodle_create_phases = ("users", "enrolments")
    _moodle_write_phases = [
        (
            frozenset(
                {
                    "student_id",
                    "course_id",
                    "batch_id",
                    "subject_ids",
                    "moodle_withdrawn",
                }
            ),
            ("users", "enrolments"),
        ),
    ]

    # A withdrawn enrolment stays visible in OpenEduCat (its own screens show
    # what they showed before the addon) and keeps OpenEduCat's one enrolment
    # per student and batch: re-enrolling is un-withdrawing it.
    moodle_withdrawn = fields.Boolean(
        string="Withdrawn from Moodle",
        tracking=True,
        copy=False,
        help="The student is unenrolled from this program's Moodle courses. "
        "Untick to enrol them again.",
    )

    def unlink(self):
        # Enqueued before the rows go: SyncEnrollment unenrols what they
        # mapped.
        self._moodle_enqueue_sync(["enrolments"])
        return super().unlink()

    def action_moodle_unenrol(self):
        """Withdraw the student from this program's Moodle courses."""
        self.env["moodle.instance"]._check_moodle_manager()
        self.write({"moodle_withdrawn": True})

    def action_moodle_reenrol(self):
        """Enrol a withdrawn student in this program's Moodle courses again."""
        self.env["moodle.instance"]._check_moodle_manager()
        self.write({"moodle_withdrawn": False})
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Enrolled again"),
                "message": _("The next push enrols the student in Moodle again."),
                "type": "info",
            },
        }
