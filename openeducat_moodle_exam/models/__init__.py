from . import op_exam_attendees
