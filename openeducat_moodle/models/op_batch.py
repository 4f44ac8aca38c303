from odoo import models


class OpBatch(models.Model):
    _name = "op.batch"
    _inherit = ["op.batch", "moodle.binding.mixin"]
    # A batch is a group in each course of its program, and its dates make
    # those courses' dates (the earliest start and the latest end of the
    # program's active batches): a new batch, a move, an archive or new dates
    # push the program's courses as well as the groups.
    _moodle_create_phases = ("subjects", "batches")
    _moodle_write_phases = [
        (
            frozenset({"start_date", "end_date", "course_id", "active"}),
            ("subjects", "batches"),
        ),
        (frozenset({"name", "code"}), ("batches",)),
    ]
