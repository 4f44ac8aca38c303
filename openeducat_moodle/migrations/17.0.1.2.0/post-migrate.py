"""17.0.1.2.0: grade keys and exam codes carry the grade's source.

Before, every source shared one integer key: gradebook item ids as they were,
quizzes at 1,000,000 + quiz id, assignments at 2,000,000 + assign id. A
gradebook item id of 1,000,000 or more (large sites pass it) was then the key
of some quiz, and both wrote one exam. Now:

* grade mapping rows: ``…#<key>`` becomes ``…#gb:<item id>``, ``…#as:<assign
  id>`` or ``…#qz:<quiz id>``, the source taken from the row itself
  (``extra_data.source``, recorded since the first grade pull), the offsets
  only when a row has none;
* the exams the connector made (``M<instance>.<key>.<batch>`` in a session
  ``MDL<instance>.<batch>``) become ``M<instance>.<G|A|Q>.<item id>.<batch>``,
  the source taken from the grade rows of their attendees (the offsets for an
  exam with none). An exam two items wrote (a collision) keeps the source of
  most of its rows (the latest one on a tie); the rows of the other item are
  removed with their attendees (whose marks are the other item's), so that
  the next pull writes that item into an exam of its own; the log names the
  exams.

Grades are not converted here: the first pull after the update converts
every stored grade once more (the conversion settings are part of the change
hash from this version on) and says so in the run log.
"""

import collections
import logging

from psycopg2.extras import execute_values

from odoo.addons.openeducat_moodle.sync.grades import (
    exam_code,
    item_key_of,
    legacy_item,
    parse_legacy_exam_code,
)
from odoo.addons.openeducat_moodle.sync.idnumbers import base36

_logger = logging.getLogger(__name__)


def _table_exists(cr, name):
    cr.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    return cr.fetchone()[0]


def _new_key(key, source):
    """The key of the new form for a grade row key of the old form, else
    ``None`` (already new, or not a grade key)."""
    head, sep, old = (key or "").rpartition("#")
    if not sep or not old.isdigit():
        return None
    return f"{head}#{item_key_of(*legacy_item(int(old), source))}"


def _grade_rows(cr):
    cr.execute(
        "SELECT id, instance_id, external_key, res_id, extra_data->>'source', "
        "last_sync_date FROM moodle_mapping WHERE moodle_model = 'grade' "
        "ORDER BY id"
    )
    return cr.fetchall()


def _connector_exams(cr):
    """``{exam id: (code, instance, old key, batch)}`` of the exams of the
    old form the connector made."""
    if not (_table_exists(cr, "op_exam") and _table_exists(cr, "op_exam_session")):
        return {}
    cr.execute(
        "SELECT e.id, e.exam_code, s.exam_code FROM op_exam e "
        "JOIN op_exam_session s ON s.id = e.session_id "
        "WHERE e.exam_code ~ '^M[0-9A-Z]+[.][0-9A-Z]+[.][0-9A-Z]+$' "
        "AND s.exam_code LIKE 'MDL%%'"
    )
    exams = {}
    for exam_id, code, session_code in cr.fetchall():
        parsed = parse_legacy_exam_code(code)
        if not parsed:
            continue
        instance_id, old, batch_id = parsed
        if session_code != f"MDL{base36(instance_id)}.{base36(batch_id)}":
            continue  # not one of the connector's sessions
        exams[exam_id] = (code, instance_id, old, batch_id)
    return exams


def _exam_sources(cr, rows, exams):
    """The source of each exam: that of most of the grade rows of its
    attendees (the latest on a tie), ``None`` for an exam with none."""
    if not exams or not rows or not _table_exists(cr, "op_exam_attendees"):
        return {}, {}
    cr.execute(
        "SELECT id, exam_id FROM op_exam_attendees WHERE exam_id = ANY(%s)",
        [list(exams)],
    )
    exam_of = dict(cr.fetchall())
    votes = collections.defaultdict(collections.Counter)
    latest = collections.defaultdict(dict)
    row_exam = {}
    for row_id, _instance, _key, res_id, source, last_sync in rows:
        exam_id = exam_of.get(res_id)
        if exam_id is None or not source:
            continue
        row_exam[row_id] = exam_id
        votes[exam_id][source] += 1
        when = str(last_sync or "")
        latest[exam_id][source] = max(latest[exam_id].get(source, ""), when)
    chosen = {
        exam_id: max(counter, key=lambda s, e=exam_id: (counter[s], latest[e][s], s))
        for exam_id, counter in votes.items()
    }
    return chosen, row_exam


def _remove_stale_attendees(cr, attendee_ids):
    """Remove the attendees (and their results) of the rows an exam's other
    item wrote: their marks are that item's, and the exam's own item gave
    the student none (one row per student and key: had it given one, the
    row would be its). An attendee whose result is on a marksheet is kept.

    :return: the ids of the attendees kept
    """
    cr.execute(
        "SELECT a.id, bool_or(r.marksheet_line_id IS NOT NULL) "
        "FROM op_exam_attendees a LEFT JOIN op_result_line r "
        "ON r.exam_id = a.exam_id AND r.student_id = a.student_id "
        "WHERE a.id = ANY(%s) GROUP BY a.id",
        [list(attendee_ids)],
    )
    found = cr.fetchall()
    kept = sorted(a for a, on_marksheet in found if on_marksheet)
    stale = [a for a, on_marksheet in found if not on_marksheet]
    if stale:
        cr.execute(
            "DELETE FROM op_result_line r USING op_exam_attendees a "
            "WHERE a.id = ANY(%s) AND r.exam_id = a.exam_id "
            "AND r.student_id = a.student_id",
            [stale],
        )
        cr.execute("DELETE FROM op_exam_attendees WHERE id = ANY(%s)", [stale])
    return kept


def migrate_grade_keys(cr):
    """Rewrite grade mapping keys and the connector's exam codes.

    :return: counts (``keys``, ``exams``, ``removed``, ``kept``) for the log
        and the tests
    """
    rows = _grade_rows(cr)
    exams = _connector_exams(cr)
    chosen, row_exam = _exam_sources(cr, rows, exams)
    counts = collections.Counter()

    # Rows an item shared with another one: the exam went to the other.
    removed = [
        row
        for row in rows
        if row[0] in row_exam and chosen.get(row_exam[row[0]]) != row[4]
    ]
    if removed:
        cr.execute(
            "DELETE FROM moodle_mapping WHERE id = ANY(%s)", [[r[0] for r in removed]]
        )
        on_marksheet = _remove_stale_attendees(cr, [r[3] for r in removed])
        _logger.warning(
            "openeducat_moodle 17.0.1.2.0: %s grade rows of items that shared an "
            "exam with another item removed with their attendees (the next pull "
            "writes them into an exam of their own): exams %s",
            len(removed),
            ", ".join(sorted({exams[row_exam[r[0]]][0] for r in removed})),
        )
        if on_marksheet:
            _logger.warning(
                "openeducat_moodle 17.0.1.2.0: attendees %s hold the marks of "
                "another item but are on a marksheet: kept, to be checked",
                on_marksheet,
            )
    counts["removed"] = len(removed)

    gone = {r[0] for r in removed}
    taken = {(row[1], row[2]) for row in rows}
    updates, duplicates = [], []
    for row_id, instance_id, key, _res_id, source, _last in rows:
        if row_id in gone:
            continue
        new = _new_key(key, source)
        if new is None:
            continue
        if (instance_id, new) in taken:
            duplicates.append(row_id)  # the new form is already there
            continue
        taken.add((instance_id, new))
        updates.append((new, row_id))
    if duplicates:
        cr.execute("DELETE FROM moodle_mapping WHERE id = ANY(%s)", [duplicates])
    # New keys hold a colon, old ones never: no row takes another's key.
    execute_values(
        cr._obj,
        "UPDATE moodle_mapping AS m SET external_key = v.key "
        "FROM (VALUES %s) AS v(key, id) WHERE m.id = v.id",
        updates,
        page_size=1000,
    )
    counts["keys"] = len(updates)

    codes = []
    for exam_id, (code, instance_id, old, batch_id) in sorted(exams.items()):
        source, item_id = legacy_item(old, chosen.get(exam_id))
        try:
            new = exam_code(instance_id, source, item_id, batch_id)
        except ValueError as err:
            counts["kept"] += 1
            _logger.warning(
                "openeducat_moodle 17.0.1.2.0: exam %s keeps its code: %s", code, err
            )
            continue
        codes.append((new, exam_id))
    # Four-part codes never equal three-part ones: no transient duplicate.
    execute_values(
        cr._obj,
        "UPDATE op_exam AS e SET exam_code = v.code "
        "FROM (VALUES %s) AS v(code, id) WHERE e.id = v.id",
        codes,
        page_size=1000,
    )
    counts["exams"] = len(codes)
    return counts


def migrate(cr, version):
    if not version:
        return
    counts = migrate_grade_keys(cr)
    _logger.info(
        "openeducat_moodle 17.0.1.2.0: %s grade keys and %s exam codes now carry "
        "their source (%s rows removed, %s exams kept their code)",
        counts["keys"],
        counts["exams"],
        counts["removed"],
        counts["kept"],
    )
