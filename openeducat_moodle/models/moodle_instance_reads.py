"""Where the reads of an instance stopped (issue 15: reads that cost what
changed).

Completion keeps its watermark on the instance (:mod:`..sync.reads`): the
plugin's ``timenow`` of the last finished run, or that run's start, and when
the last whole read ran. It is written only through
``_moodle_own_transaction`` (a short transaction of its own, see
:mod:`.moodle_instance_runs`), once the run's completion rows are stored, never
in the job's own transaction. Attendance keeps its watermark on a mapping row
of its own kind, written with the registers it read (see
:mod:`..services.attendance`).
"""

from odoo import fields, models


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    completion_watermark = fields.Json(
        readonly=True,
        copy=False,
        help="Where the last completion pull stopped: the next one reads what "
        "changed since (technical).",
    )
