"""The sync decisions, as plain Python over plain rows: no ``odoo`` import.

``rows`` describes what OpenEduCat holds, ``idnumbers`` names every Moodle
object, ``hashing`` tells changed from unchanged, ``ordering`` puts parents
first, ``backoff`` schedules retries, ``limits`` fits payloads into Moodle's
columns, ``store`` is the mapping table's interface, and ``push`` plans and
applies a push with a
:class:`~openeducat_moodle.moodle.MoodleClient`.
"""
