from odoo import models


class OpBatch(models.Model):
    _name = "op.batch"
    _inherit = ["op.batch", "moodle.binding.mixin"]
    _moodle_create_phases = ("batches",)
    _moodle_write_phases = [
        (frozenset({"name", "code", "course_id", "active"}), ("batches",)),
    ]
