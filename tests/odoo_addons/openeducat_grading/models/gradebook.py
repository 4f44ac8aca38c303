"""The three models and two methods OpenEduCat publishes for its enterprise
gradebook, and the fields the connector's writer assumes (see ../../README.md).

Nothing else: no views, no computation (none is published).
"""

from odoo import fields, models


class GradingAssignment(models.Model):
    _name = "grading.assignment"
    _description = "Grading Assignment (test stand-in)"

    name = fields.Char(required=True)
    code = fields.Char(index=True)
    subject_id = fields.Many2one("op.subject")
    total_marks = fields.Float()


class GradebookGradebook(models.Model):
    _name = "gradebook.gradebook"
    _description = "Gradebook (test stand-in)"

    student_id = fields.Many2one("op.student", required=True, ondelete="cascade")
    batch_id = fields.Many2one("op.batch", required=True)

    def calculate_percentage(self):
        """Published by name only: what it computes is not."""
        return True

    def student_Grade_override(self):
        """Published by name only (spelling included): what it does is not."""
        return True


class GradebookLine(models.Model):
    _name = "gradebook.line"
    _description = "Gradebook Line (test stand-in)"

    gradebook_id = fields.Many2one(
        "gradebook.gradebook", required=True, ondelete="cascade"
    )
    assignment_id = fields.Many2one(
        "grading.assignment", required=True, ondelete="cascade"
    )
    marks = fields.Float()
