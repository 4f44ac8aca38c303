"""17.0.1.2.0: withdrawals no longer archive OpenEduCat's enrolments.

Earlier versions added an ``active`` field to ``op.student.course`` and
withdrew a student from Moodle by archiving the enrolment: OpenEduCat's own
screens then hid it, and enrolling the student in the same batch again hit
OpenEduCat's one-enrolment-per-batch constraint. The withdrawal is now the
``moodle_withdrawn`` flag; the enrolments are visible again.
"""

from odoo.tools import sql


def migrate(cr, version):
    if not version or not sql.column_exists(cr, "op_student_course", "active"):
        return
    cr.execute(
        "UPDATE op_student_course SET moodle_withdrawn = TRUE WHERE active IS FALSE"
    )
    cr.execute("ALTER TABLE op_student_course DROP COLUMN active")
