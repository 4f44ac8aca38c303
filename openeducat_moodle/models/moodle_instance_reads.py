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

import contextlib

from odoo import fields, models


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    completion_watermark = fields.Json(
        readonly=True,
        copy=False,
        help="Where the last completion pull stopped: the next one reads what "
        "changed since (technical).",
    )

    @contextlib.contextmanager
    def _moodle_committing(self, env):
        """Work that keeps what it did as it goes: yield ``(side_env,
        commit)``, ``side_env`` being ``env`` on a cursor of its own and
        ``commit()`` committing what was written on it so far.

        A long read (a grade pull of thousands of courses) commits after
        each course, so a failure at the last course keeps the others. What
        was written since the last ``commit()`` is rolled back when the block
        raises. When the instance is not committed yet (created in the
        calling transaction: a test, a set-up script), nothing else can see
        it: the work runs in ``env`` itself and ``commit()`` only flushes.
        """
        self.ensure_one()
        with self.env.registry.cursor() as cr:
            cr.execute("SELECT 1 FROM moodle_instance WHERE id = %s", [self.id])
            committed = bool(cr.fetchone())
        if not committed:
            yield env, env.flush_all
            return
        with self.env.registry.cursor() as cr:
            side = env(cr=cr)

            def commit():
                side.flush_all()
                # This cursor is this method's own, never the job's: the
                # job's transaction is left to queue_job.
                cr.commit()  # pylint: disable=invalid-commit

            yield side, commit
            commit()
        self.env.invalidate_all()
