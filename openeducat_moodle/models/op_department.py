from odoo import models


class OpDepartment(models.Model):
    _name = "op.department"
    _inherit = ["op.department", "moodle.binding.mixin"]
    _moodle_create_phases = ("departments",)
    _moodle_write_phases = [
        (frozenset({"name", "code", "parent_id"}), ("departments",)),
    ]
