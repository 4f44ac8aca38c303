from odoo import models


class OpCourse(models.Model):
    _name = "op.course"
    _inherit = ["op.course", "moodle.binding.mixin"]
    # New subjects become courses, with the batch groups and the enrolments
    # of the students who have not chosen subjects yet.
    _moodle_create_phases = ("programs", "subjects", "batches")
    _moodle_write_phases = [
        (frozenset({"subject_ids"}), ("programs", "subjects", "batches", "enrolments")),
        (
            frozenset({"name", "code", "department_id", "active"}),
            ("programs", "subjects"),
        ),
    ]
