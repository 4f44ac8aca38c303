#!/bin/bash
# One-shot step of the compose stack, run before the Odoo server starts:
#   * new database: create it and install OpenEduCat (core, exam, attendance),
#     queue_job and openeducat_moodle, with OpenEduCat's demo data when
#     ODOO_DEMO=true;
#   * existing database: update openeducat_moodle (a rebuilt image may carry a
#     newer version), and load the demo data if ODOO_DEMO=true asks for it and
#     the database has none yet;
#   * either way: give admin the password ODOO_ADMIN_PASSWORD while admin
#     still has the default one ("admin"), so that the web client never
#     accepts admin/admin once the server is up.
# Safe to run again: `docker compose run --rm odoo-init`.
set -euo pipefail

: "${ODOO_ADMIN_PASSWORD:?ODOO_ADMIN_PASSWORD is not set}"

DB=${ODOO_DB_NAME:-oec}
MODULES=openeducat_core,openeducat_exam,openeducat_attendance,queue_job,openeducat_moodle,openeducat_moodle_exam
DB_ARGS=(--db_host "${HOST:-db}" --db_port "${PORT:-5432}"
         --db_user "${USER:-odoo}" --db_password "${PASSWORD:?PASSWORD is not set}")
# odoo [shell] <options>: the sub-command, when there is one, comes first.
odoo_db() { odoo "$@" -c "${ODOO_RC:-/etc/odoo/odoo.conf}" "${DB_ARGS[@]}" -d "$DB"; }
demo=false
case "${ODOO_DEMO:-false}" in true|TRUE|True|1|yes) demo=true ;; esac

wait-for-psql.py "${DB_ARGS[@]}" --timeout=60

# "missing", "empty" (database without openeducat_moodle), or the demo flag of
# the base module ("demo" / "nodemo").
state=$(python3 - "$DB" <<'PY'
import os
import sys

import psycopg2

args = dict(
    host=os.environ.get("HOST", "db"),
    port=os.environ.get("PORT", "5432"),
    user=os.environ.get("USER", "odoo"),
    password=os.environ["PASSWORD"],
)
try:
    conn = psycopg2.connect(dbname=sys.argv[1], **args)
except psycopg2.OperationalError:
    print("missing")
    sys.exit()
with conn, conn.cursor() as cr:
    cr.execute("SELECT to_regclass('ir_module_module')")
    if cr.fetchone()[0] is None:
        print("empty")
        sys.exit()
    cr.execute(
        "SELECT name, state, demo FROM ir_module_module"
        " WHERE name IN ('base', 'openeducat_moodle')"
    )
    rows = {name: (state, demo) for name, state, demo in cr.fetchall()}
if rows.get("openeducat_moodle", ("",))[0] != "installed":
    print("empty")
else:
    print("demo" if rows["base"][1] else "nodemo")
PY
)

case "$state" in
  missing|empty)
    echo "odoo-init: installing $MODULES into database $DB (demo data: $demo)"
    if [ "$demo" = true ]; then
      odoo_db -i "$MODULES" --stop-after-init --no-http
    else
      odoo_db -i "$MODULES" --without-demo=all --stop-after-init --no-http
    fi
    ;;
  *)
    echo "odoo-init: database $DB exists; updating openeducat_moodle"
    odoo_db -i openeducat_moodle_exam -u openeducat_moodle,openeducat_moodle_exam \
      --stop-after-init --no-http
    if [ "$demo" = true ] && [ "$state" = nodemo ]; then
      echo "odoo-init: loading the demo data of every installed module"
      odoo_db shell --no-http --log-level=warn <<'PY'
import odoo.modules.loading

odoo.modules.loading.force_demo(env)
env.cr.commit()
PY
    fi
    ;;
esac

# The admin password: ODOO_ADMIN_PASSWORD, given here before the server starts
# (a new database's admin has the password "admin"). Set only while admin still
# has that default, so a password changed later in Odoo is kept: then put the
# new one in .env too, for odoo-setup, which only logs in.
echo "odoo-init: admin password"
odoo_db shell --no-http --log-level=warn <<'PY'
import os

admin = env.ref("base.user_admin")
env.cr.execute("SELECT COALESCE(password, '') FROM res_users WHERE id = %s", [admin.id])
[stored] = env.cr.fetchone()
if stored and admin._crypt_context().verify("admin", stored):
    admin.password = os.environ["ODOO_ADMIN_PASSWORD"]
    env.cr.commit()
    print("odoo-init: admin password set from ODOO_ADMIN_PASSWORD")
else:
    print("odoo-init: admin password left as it is (not the default any more)")
PY
echo "odoo-init: done"
