from odoo import models

from .moodle_binding_mixin import PERSON_FIELDS


class OpFaculty(models.Model):
    _name = "op.faculty"
    _inherit = ["op.faculty", "moodle.binding.mixin"]
    _moodle_create_phases = ("users", "enrolments")
    _moodle_write_phases = [
        (frozenset({"faculty_subject_ids"}), ("users", "enrolments")),
        (PERSON_FIELDS, ("users",)),
    ]
