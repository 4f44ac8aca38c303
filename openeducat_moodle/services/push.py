"""SyncPush: reads OpenEduCat into rows, runs the push core, stores mappings."""

import collections
import io
import json
import logging

from psycopg2.extras import execute_values

from odoo import _
from odoo.exceptions import UserError

from ..sync.accounts import moodle_lang
from ..sync.push import PushResult, PushSettings, PushSync
from ..sync.rows import (
    Batch,
    Department,
    Enrolment,
    Person,
    Program,
    Snapshot,
    Subject,
)
from ..sync.store import Mapping, Store

_logger = logging.getLogger(__name__)

# The keys of extra_data the push core owns (and may remove).
PUSH_EXTRA_KEYS = frozenset(
    {
        "failed_hash",
        "attempts",
        "groupid",
        "note",
        "enrolled",
        "shortened",
        # users: the account another person's row shares, an account found
        # when Moodle refused a create, how an account was adopted, its
        # username ("adopt", a Moodle Manager's decision, is the wizard's)
        "account",
        "candidate",
        "adopted",
        "username",
        "refused",
    }
)

_COLUMNS = (
    "res_model, res_id, moodle_id, moodle_idnumber, sync_hash, state, retry_count, "
    "next_retry_date, last_error, last_sync_date, extra_data"
)
_ROW_TEMPLATE = (
    "%s::varchar, %s::int, %s::int, %s::varchar, %s::varchar, %s::varchar, %s::int, "
    "%s::timestamp, %s::text, %s::timestamp, %s::jsonb"
)
_UPDATE_SQL = (
    "UPDATE moodle_mapping AS m SET "
    "res_model = v.res_model, res_id = v.res_id, moodle_id = v.moodle_id, "
    "moodle_idnumber = v.moodle_idnumber, sync_hash = v.sync_hash, state = v.state, "
    "retry_count = v.retry_count, next_retry_date = v.next_retry_date, "
    "last_error = v.last_error, last_sync_date = v.last_sync_date, "
    "extra_data = v.extra_data, write_uid = v.write_uid, "
    "write_date = now() at time zone 'UTC' "
    "FROM (VALUES %s) AS v(id, " + _COLUMNS + ", write_uid) WHERE m.id = v.id"
)
_UPDATE_TEMPLATE = "(%s::int, " + _ROW_TEMPLATE + ", %s::int)"
_COPY_SQL = (
    "COPY moodle_mapping (instance_id, moodle_model, external_key, "
    + _COLUMNS
    + ", create_uid, write_uid, create_date, write_date) FROM STDIN"
)
# COPY's text format: NULL is \N; backslash, tab, newline and CR are escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


class OdooStore(Store):
    """The :class:`~..sync.store.Store` interface over ``moodle.mapping``.

    Each kind is read in one query; rows are written in bulk (plain SQL: the
    table is the connector's own and nothing else hooks its writes).
    """

    def __init__(self, instance):
        self.instance = instance
        self.model = instance.env["moodle.mapping"].sudo()
        self._ids = {}

    def load(self, kind):
        """Every mapping of ``kind`` on the instance, in one query (plain SQL:
        the ORM's per-row overhead dominates on a hundred thousand rows)."""
        self.model.flush_model()
        cr = self.model.env.cr
        cr.execute(
            "SELECT id, external_key, res_model, res_id, moodle_id, moodle_idnumber, "
            "sync_hash, state, retry_count, next_retry_date, last_error, "
            "last_sync_date, extra_data FROM moodle_mapping "
            "WHERE instance_id = %s AND moodle_model = %s ORDER BY id",
            [self.instance.id, kind],
        )
        mappings = {}
        for row in cr.fetchall():
            (record_id, key, res_model, res_id, moodle_id, idnumber, sync_hash) = row[
                :7
            ]
            (state, retry_count, next_retry, last_error, last_sync, extra) = row[7:]
            self._ids[kind, key] = record_id
            mappings[key] = Mapping(
                kind=kind,
                key=key,
                res_model=res_model,
                res_id=res_id,
                moodle_id=moodle_id or None,
                idnumber=idnumber or None,
                sync_hash=sync_hash or None,
                state=state,
                retry_count=retry_count or 0,
                next_retry=next_retry or None,
                last_error=last_error or None,
                last_sync=last_sync or None,
                extra=dict(extra or {}),
            )
        return mappings

    def remember(self, kind, key, record_id):
        """Note the id of a row read elsewhere, so that :meth:`save` updates
        it instead of inserting it again."""
        self._ids[kind, key] = record_id

    def save(self, mappings):
        """Create or update the rows in bulk.

        A full push stores up to hundreds of thousands of rows; one ORM
        ``create``/``write`` per row costs more than Moodle does, so rows go
        in with one multi-row INSERT or UPDATE per page (the table is the
        connector's own: no other module hooks its writes), and the ORM cache
        is invalidated afterwards.
        """
        to_create, to_write = [], []
        for mapping in mappings:
            record_id = self._ids.get((mapping.kind, mapping.key))
            (to_write if record_id else to_create).append(mapping)
        if not (to_create or to_write):
            return
        self.model.flush_model()
        cr, uid = self.model.env.cr, self.model.env.uid
        if to_write:
            ids = [self._ids[m.kind, m.key] for m in to_write]
            cr.execute(
                "SELECT id, extra_data FROM moodle_mapping WHERE id = ANY(%s)", [ids]
            )
            stored = {row[0]: row[1] or {} for row in cr.fetchall()}
            rows = []
            for mapping, record_id in zip(to_write, ids, strict=True):
                # Other services keep their own keys in extra_data
                # (attendance activity ids…): keep them.
                extra = {
                    k: v
                    for k, v in stored.get(record_id, {}).items()
                    if k not in PUSH_EXTRA_KEYS
                }
                extra.update(mapping.extra)
                rows.append((record_id, *self._row(mapping, extra), uid))
            execute_values(
                cr._obj, _UPDATE_SQL, rows, template=_UPDATE_TEMPLATE, page_size=1000
            )
        if to_create:
            self._insert(to_create, cr, uid)
        self.model.invalidate_model()

    def _insert(self, mappings, cr, uid):
        """New rows go in with COPY (half the time of multi-row INSERTs on a
        first push), then their ids are read back by key."""
        now = cr.now()
        instance_id = self.instance.id
        lines = []
        for m in mappings:
            values = (instance_id, m.kind, m.key, *self._row(m, m.extra))
            lines.append(
                "\t".join(
                    [
                        _NULL
                        if v is None
                        else v.translate(_COPY_ESCAPES)
                        if type(v) is str
                        else str(v)
                        for v in values
                    ]
                )
                + f"\t{uid}\t{uid}\t{now}\t{now}"
            )
        lines.append("")
        cr._obj.copy_expert(_COPY_SQL, io.StringIO("\n".join(lines)))
        by_kind = collections.defaultdict(list)
        for m in mappings:
            by_kind[m.kind].append(m.key)
        for kind, keys in by_kind.items():
            cr.execute(
                "SELECT id, external_key FROM moodle_mapping WHERE instance_id = %s "
                "AND moodle_model = %s AND external_key = ANY(%s)",
                [self.instance.id, kind, keys],
            )
            for record_id, key in cr.fetchall():
                self._ids[kind, key] = record_id

    @staticmethod
    def _row(mapping, extra):
        return (
            mapping.res_model,
            mapping.res_id,
            mapping.moodle_id or 0,
            mapping.idnumber or None,
            mapping.sync_hash or None,
            mapping.state,
            mapping.retry_count,
            mapping.next_retry or None,
            mapping.last_error or None,
            mapping.last_sync or None,
            json.dumps(extra) if extra else None,
        )

    def delete(self, mappings):
        ids = [
            self._ids.pop((m.kind, m.key))
            for m in mappings
            if (m.kind, m.key) in self._ids
        ]
        self.model.browse(ids).unlink()


def _m2o(value):
    """A many2one read with ``load=""`` (its id, or ``False``) as an id or None."""
    return value or None


# What a person's Moodle account carries of their partner.
PARTNER_FIELDS = [
    "name",
    "email",
    "lang",
    "phone",
    "mobile",
    "city",
    "country_id",
    "street",
    "street2",
]


def _text(value):
    """A char field's value, stripped, or ``None`` when empty."""
    return (value or "").strip() or None


def _contact(row):
    """The contact fields of a :class:`~..sync.rows.Person` from a row read by
    :meth:`OdooReader._read_person`."""
    return {f: row[f] for f in ("phone", "city", "country", "address")}


class OdooReader:
    """Reads OpenEduCat records into :mod:`..sync.rows`.

    The academic structure (departments, programs, subjects, batches) is
    small and always read whole. People and enrolments are read whole for a
    full push, or only those a job is about (``seeds``) and those they bring.
    """

    def __init__(self, env):
        self.env = env

    def _read(self, model, domain, fields):
        """Stored fields, many2ones as plain ids (``load=""``: no display
        names, which cost more than the rest of the read on 100,000 rows)."""
        model = self.env[model].sudo().with_context(active_test=False)
        return model.search_read(domain, fields, order="id", load="")

    def _read_person(self, model, domain, fields):
        """Students or faculty with their partner's name, email, language and
        contact data: ``phone`` (the phone, else the mobile), ``city``,
        ``country`` (the ISO code, upper case) and ``address`` (street and
        street 2 on one line).

        Those are ``_inherits`` fields, computed per record through the
        related-field machinery; the partners are read directly instead.
        """
        rows = self._read(model, domain, [*fields, "partner_id"])
        partners = {
            p["id"]: p
            for p in self._read(
                "res.partner",
                [("id", "in", [r["partner_id"] for r in rows if r["partner_id"]])],
                PARTNER_FIELDS,
            )
        }
        countries = {
            c["id"]: (c["code"] or "").upper()
            for c in self._read(
                "res.country",
                [("id", "in", list({p["country_id"] or 0 for p in partners.values()}))],
                ["code"],
            )
        }
        for row in rows:
            partner = partners.get(row["partner_id"]) or {}
            streets = (partner.get(f) for f in ("street", "street2"))
            row.update(
                name=partner.get("name"),
                email=partner.get("email"),
                lang=partner.get("lang"),
                phone=_text(partner.get("phone")) or _text(partner.get("mobile")),
                city=_text(partner.get("city")),
                country=countries.get(partner.get("country_id")),
                address=", ".join(filter(None, map(_text, streets))) or None,
            )
        return rows

    def _tz(self):
        """The institution's time zone (a course's dates are its batches'
        days there): the company's, else the admin's, as for attendance."""
        admin = self.env.ref("base.user_admin", raise_if_not_found=False)
        return self.env.company.partner_id.tz or (admin and admin.sudo().tz) or "UTC"

    def snapshot(self, seeds=None):
        """Return ``(snapshot, scope)``.

        :param dict seeds: ``{model: [ids]}`` the job is about, or ``None``
            for everything
        :return: the rows, and the unenrolment scope for the push core
            (``None`` when the snapshot is whole)
        """
        snap = Snapshot(tz=self._tz())
        for row in self._read("op.department", [], ["name", "code", "parent_id"]):
            snap.departments[row["id"]] = Department(
                row["id"], row["name"], row["code"] or "", _m2o(row["parent_id"])
            )
        for row in self._read(
            "op.course",
            [],
            ["name", "code", "department_id", "subject_ids", "active"],
        ):
            snap.programs[row["id"]] = Program(
                row["id"],
                row["name"],
                row["code"],
                _m2o(row["department_id"]),
                tuple(row["subject_ids"]),
                row["active"],
            )
        for row in self._read(
            "op.subject", [], ["name", "code", "department_id", "active"]
        ):
            snap.subjects[row["id"]] = Subject(
                row["id"],
                row["name"],
                row["code"],
                _m2o(row["department_id"]),
                row["active"],
            )
        for row in self._read(
            "op.batch",
            [],
            ["name", "code", "course_id", "active", "start_date", "end_date"],
        ):
            snap.batches[row["id"]] = Batch(
                row["id"],
                row["name"],
                row["code"],
                _m2o(row["course_id"]),
                row["active"],
                start_date=row["start_date"] or None,
                end_date=row["end_date"] or None,
            )
        student_domain, enrol_domain, faculty_domain = [], [], []
        scope = None
        if seeds is not None:
            students = set(seeds.get("op.student", []))
            enrolments = set(seeds.get("op.student.course", []))
            faculty = set(seeds.get("op.faculty", []))
            programs = set(seeds.get("op.course", []))
            enrol_domain = [
                "|",
                "|",
                ("id", "in", list(enrolments)),
                ("student_id", "in", list(students)),
                ("course_id", "in", list(programs)),
            ]
            found = self._read("op.student.course", enrol_domain, ["student_id"])
            enrolments |= {r["id"] for r in found}
            students |= {_m2o(r["student_id"]) for r in found if r["student_id"]}
            if programs:
                subjects = {
                    s
                    for p in programs
                    if p in snap.programs
                    for s in snap.programs[p].subject_ids
                }
                faculty |= {
                    r["id"]
                    for r in self._read(
                        "op.faculty",
                        [("faculty_subject_ids", "in", list(subjects))],
                        ["id"],
                    )
                }
            enrol_domain = [("id", "in", list(enrolments))]
            student_domain = [("id", "in", list(students))]
            faculty_domain = [("id", "in", list(faculty))]
            scope = {"enrolments": enrolments, "faculty": faculty}
        self._read_people(snap, student_domain, faculty_domain)
        for row in self._read(
            "op.student.course",
            enrol_domain,
            ["student_id", "course_id", "batch_id", "subject_ids", "moodle_withdrawn"],
        ):
            if not row["student_id"]:
                continue
            snap.enrolments[row["id"]] = Enrolment(
                row["id"],
                _m2o(row["student_id"]),
                _m2o(row["course_id"]),
                _m2o(row["batch_id"]),
                tuple(row["subject_ids"]),
                not row["moodle_withdrawn"],
            )
        return snap, scope

    def _read_people(self, snap, student_domain, faculty_domain):
        logins = {}
        students = self._read_person(
            "op.student",
            student_domain,
            ["first_name", "last_name", "user_id", "active"],
        )
        user_ids = {_m2o(r["user_id"]) for r in students if r["user_id"]}
        if user_ids:
            logins = {
                r["id"]: r["login"]
                for r in self._read(
                    "res.users", [("id", "in", list(user_ids))], ["login"]
                )
            }
        for row in students:
            first, last = _names(row)
            snap.students[row["id"]] = Person(
                row["id"],
                "student",
                first,
                last,
                row["email"] or None,
                login=logins.get(_m2o(row["user_id"])),
                active=row["active"],
                lang=_moodle_lang(row["lang"]),
                partner_id=_m2o(row["partner_id"]),
                **_contact(row),
            )
        for row in self._read_person(
            "op.faculty",
            faculty_domain,
            [
                "first_name",
                "last_name",
                "active",
                "faculty_subject_ids",
                "main_department_id",
            ],
        ):
            first, last = _names(row)
            snap.faculty[row["id"]] = Person(
                row["id"],
                "faculty",
                first,
                last,
                row["email"] or None,
                active=row["active"],
                subject_ids=tuple(row["faculty_subject_ids"]),
                department_id=_m2o(row["main_department_id"]),
                lang=_moodle_lang(row["lang"]),
                partner_id=_m2o(row["partner_id"]),
                **_contact(row),
            )


def _names(row):
    """First and last name; from the display name when the parts are empty."""
    first = (row.get("first_name") or "").strip()
    last = (row.get("last_name") or "").strip()
    if not (first and last) and row.get("name"):
        parts = row["name"].strip().split(" ", 1)
        first = first or parts[0]
        last = last or (parts[1] if len(parts) > 1 else "")
    return first, last


def _moodle_lang(lang):
    """Odoo's ``pt_BR`` → Moodle's ``pt_br``, ``fr_FR`` → ``fr``; English is
    Moodle's default (see :func:`..sync.accounts.moodle_lang`)."""
    return moodle_lang(lang)


class SyncPush:
    """Push OpenEduCat to one Moodle instance.

    :param instance: a ``moodle.instance`` record
    :param client: the instance's :class:`~..moodle.MoodleClient`
    :param bool dry_run: plan only, write nothing on either side
    """

    def __init__(self, instance, client, dry_run=False):
        self.instance = instance
        self.client = client
        self.dry_run = dry_run

    def settings(self):
        instance = self.instance
        phases = []
        if instance.push_structure:
            phases += ["departments", "programs", "subjects"]
        if instance.push_users:
            phases.append("users")
        if instance.push_groups:
            phases.append("batches")
        if instance.push_enrolments:
            phases.append("enrolments")
        return PushSettings(
            student_role_id=instance.student_role_id,
            teacher_role_id=instance.teacher_role_id,
            auth=instance._moodle_auth(),
            department_ids=frozenset(instance.department_ids.ids),
            phases=tuple(phases),
            unenrol_limit_percent=instance.unenrol_limit_percent,
            unenrol_limit_count=instance.unenrol_limit_count,
            unenrol_confirmed=frozenset(instance.unenrol_confirmed_keys or ()),
            adopt_accounts=instance.adopt_existing_accounts or "review",
            adopt_keep_auth=instance.adopt_keep_auth,
        )

    def run(self, phases=None, seeds=None, engine=PushSync, department_ids=None):
        """Push what the seeds concern (everything without seeds).

        :param engine: :class:`~..sync.push.PushSync`, or one of the
            read-only planners of :mod:`..sync.reconcile` (initial import,
            drift check); the engine used stays on ``self.engine``
        :param department_ids: narrow the instance's departments (Sync Wizard)
        :return: the engine's :class:`~..sync.push.PushResult`
        """
        settings = self.settings()
        if department_ids:
            # Narrowed, never widened: a department the instance does not
            # serve is not pushed to it.
            chosen = frozenset(department_ids)
            served = settings.department_ids
            settings.department_ids = (chosen & served) if served else chosen
            if not settings.department_ids:
                raise UserError(
                    _(
                        "%s serves none of the chosen departments.",
                        self.instance.name,
                    )
                )
        if phases:
            phases = [p for p in settings.phases if p in phases]
            if not phases:
                # None of the phases asked for is enabled on this instance:
                # nothing to do (not everything, as an empty list would mean).
                self.engine = None
                return PushResult()
        snapshot, scope = OdooReader(self.instance.env).snapshot(seeds)
        if department_ids:
            # Only the chosen departments' enrolments may be unenrolled.
            scope = dict(scope or {})
            scope["programs"] = {
                p.id
                for p in snapshot.programs.values()
                if p.department_id in settings.department_ids
            }
        store = OdooStore(self.instance)
        if engine is PushSync:
            self.engine = engine(self.client, store, settings, dry_run=self.dry_run)
        else:
            self.engine = engine(self.client, store, settings)
        return self.engine.run(snapshot, phases=phases, scope=scope)
