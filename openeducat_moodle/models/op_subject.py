from odoo import models


class OpSubject(models.Model):
    _name = "op.subject"
    _inherit = ["op.subject", "moodle.binding.mixin"]
    _moodle_create_phases = ()
    _moodle_write_phases = [
        (frozenset({"name", "code", "department_id", "active"}), ("subjects",)),
    ]
