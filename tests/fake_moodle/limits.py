"""Moodle's column limits, and the errors a too-long value ends in.

The lengths are those of ``lib/db/install.xml`` (Moodle 4.5.6; 5.1.3+
differs in one: a course's ``fullname`` takes 1333 characters). Moodle's web
services describe these fields as ``PARAM_RAW``/``PARAM_TEXT``/``PARAM_NOTAGS``
without a length, so most too-long values reach the database, which refuses
them: MariaDB/MySQL (Moodle runs them with ``sql_mode = STRICT_ALL_TABLES``)
with "Data too long for column", PostgreSQL with "value too long for type
character varying(N)". Moodle wraps both in ``dml_write_exception``
(``dmlwriteexception``, "Error writing to database"). A few are checked in
PHP first and answered with their own error code (category name and
idnumber); a user's ``country`` and ``lang`` are cleaned to the site default
when they are not one of the site's choices, so they never reach the column.
"""

from .errors import MoodleError, moodle_exception

DML_WRITE_EXC = "dml_write_exception"
DML_WRITE_MESSAGE = "Error writing to database"

# table → {column: characters}
COLUMN_LIMITS = {
    "course": {"fullname": 254, "shortname": 255, "idnumber": 100},
    "course_categories": {"name": 255, "idnumber": 100, "theme": 50},
    "groups": {"name": 254, "idnumber": 100, "enrolmentkey": 50},
    "user": {
        "auth": 20,
        "username": 100,
        "idnumber": 255,
        "firstname": 100,
        "lastname": 100,
        "email": 100,
        "phone1": 20,
        "phone2": 20,
        "institution": 255,
        "department": 255,
        "address": 255,
        "city": 120,
        "country": 2,
        "lang": 30,
        "calendartype": 30,
        "theme": 50,
        "timezone": 100,
        "firstnamephonetic": 255,
        "lastnamephonetic": 255,
        "middlename": 255,
        "alternatename": 255,
    },
}


# Moodle 5.x widened the course full name.
COLUMN_LIMITS_51 = {
    **COLUMN_LIMITS,
    "course": {**COLUMN_LIMITS["course"], "fullname": 1333},
}
FLAVOUR_LIMITS = {"4.5": COLUMN_LIMITS, "5.1": COLUMN_LIMITS_51}


def dml_write_error(table, column, statement="INSERT INTO"):
    """``dml_write_exception`` as Moodle on MariaDB answers a too-long value.

    ``debuginfo`` (shown only with developer debugging) carries the
    database's own words and the statement, as Moodle's does.
    """
    return MoodleError(
        DML_WRITE_EXC,
        "dmlwriteexception",
        DML_WRITE_MESSAGE,
        f"Data too long for column '{column}' at row 1\n{statement} mdl_{table}",
    )


def too_long(table, record, limits=COLUMN_LIMITS):
    """The first column of ``record`` longer than ``table`` allows, or None."""
    for column, limit in limits[table].items():
        value = record.get(column)
        if isinstance(value, str) and len(value) > limit:
            return column
    return None


def check_columns(table, record, statement="INSERT INTO", limits=COLUMN_LIMITS):
    """Raise Moodle's database error if a value of ``record`` is too long."""
    column = too_long(table, record, limits)
    if column is not None:
        raise dml_write_error(table, column, statement)


def check_category(record):
    """``core_course_category::create()``/``update()``: the name and the
    idnumber are measured in PHP, before the database."""
    name = record.get("name")
    if isinstance(name, str) and len(name) > COLUMN_LIMITS["course_categories"]["name"]:
        raise moodle_exception("categorytoolong", "Category name too long")
    idnumber = record.get("idnumber")
    if isinstance(idnumber, str) and len(idnumber) > 100:
        raise moodle_exception("idnumbertoolong", "ID number is too long")
    check_columns("course_categories", record)
