from odoo import _, api, fields, models
from odoo.exceptions import ValidationError


class MoodleGradeScaleLine(models.Model):
    """A letter band of an instance's grade scale, e.g. A = 90–100 %."""

    _name = "moodle.grade.scale.line"
    _description = "Moodle Grade Scale Band"
    _order = "min_percent desc"

    instance_id = fields.Many2one("moodle.instance", required=True, ondelete="cascade")
    letter = fields.Char(required=True)
    min_percent = fields.Float(string="From %", required=True)
    max_percent = fields.Float(string="To %", required=True)

    @api.constrains("min_percent", "max_percent", "instance_id")
    def _check_band(self):
        for line in self:
            if not 0 <= line.min_percent <= line.max_percent <= 100:
                raise ValidationError(
                    _(
                        "Band %s must lie within 0–100 %% and start below its end.",
                        line.letter,
                    )
                )
            for other in line.instance_id.grade_scale_line_ids - line:
                if (
                    line.min_percent <= other.max_percent
                    and other.min_percent <= line.max_percent
                ):
                    raise ValidationError(
                        _(
                            "Bands %(a)s and %(b)s overlap.",
                            a=line.letter,
                            b=other.letter,
                        )
                    )
