from odoo import models

from .moodle_binding_mixin import PERSON_FIELDS


class OpStudent(models.Model):
    _name = "op.student"
    _inherit = ["op.student", "moodle.binding.mixin"]
    _moodle_create_phases = ("users",)
    _moodle_write_phases = [
        (PERSON_FIELDS, ("users",)),
    ]
