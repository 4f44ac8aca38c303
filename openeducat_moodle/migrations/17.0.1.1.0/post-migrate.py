"""17.0.1.1.0: course completion moves out of the enrolment mappings.

Completion statuses were merged into the ``extra_data`` of the push's
enrolment mapping rows, so a completion pull and a push of one instance
updated the same rows (and one of them was rolled back at REPEATABLE READ).
They now live in rows of their own (``moodle_model = 'completion'``).
"""

MOVE = """
INSERT INTO moodle_mapping (instance_id, res_model, res_id, moodle_model,
    external_key, state, extra_data, last_sync_date, create_uid, write_uid,
    create_date, write_date)
SELECT instance_id, res_model, res_id, 'completion', external_key, 'synced',
    jsonb_strip_nulls(jsonb_build_object(
        'completion', extra_data->'completion',
        'completed_at', extra_data->'completed_at')),
    last_sync_date, create_uid, write_uid, create_date, write_date
FROM moodle_mapping
WHERE moodle_model = 'enrolment' AND extra_data ? 'completion'
ON CONFLICT (instance_id, moodle_model, external_key) DO NOTHING
"""

CLEAN = """
UPDATE moodle_mapping SET extra_data = extra_data - 'completion' - 'completed_at'
WHERE moodle_model = 'enrolment' AND extra_data ? 'completion'
"""


def migrate(cr, version):
    if not version:
        return
    cr.execute(MOVE)
    cr.execute(CLEAN)
