#!/bin/bash
# Entry point of the Moodle container: install Moodle on the first start (or
# upgrade it after a new image), which installs or upgrades the companion plugin
# local_openeducat the image holds in local/openeducat too; give the user admin
# MOODLE_ADMIN_PASSWORD (admin_password.php, every start); configure the web
# services for the connector: the plugin's cli/setup.php (user, role, token
# MOODLE_SYNC_TOKEN, the plugin's service), or configure_ws.php when Moodle has
# no plugin or MOODLE_WS_PLUGIN=false; run Moodle's cron every minute, then
# start the command (apache2-foreground). A first install that was interrupted
# (tables but no version) is reported with its remedy, and the container exits
# with 1.
set -euo pipefail

: "${MOODLE_DB_PASSWORD:?MOODLE_DB_PASSWORD is not set}"
: "${MOODLE_ADMIN_PASSWORD:?MOODLE_ADMIN_PASSWORD is not set}"
: "${MOODLE_SYNC_TOKEN:?MOODLE_SYNC_TOKEN is not set}"
MOODLE_DIR=${MOODLE_DIR:-/var/www/html}
MOODLE_DATAROOT=${MOODLE_DATAROOT:-/var/moodledata}
OEC_LIB=${OEC_LIB:-/usr/local/lib/oec}
export MOODLE_DATAROOT

# Moodle's REST server only accepts alphanumeric tokens.
if ! [[ $MOODLE_SYNC_TOKEN =~ ^[A-Za-z0-9]{32,128}$ ]]; then
    echo "moodle: MOODLE_SYNC_TOKEN must be 32 to 128 letters and digits" \
         "(e.g. openssl rand -hex 16)" >&2
    exit 1
fi

as_www() { runuser -u www-data -- "$@"; }

mkdir -p "$MOODLE_DATAROOT"
chown www-data: "$MOODLE_DATAROOT"

for _ in $(seq 1 60); do
    state=$(php "$OEC_LIB/dbstate.php")
    [ "$state" != down ] && break
    sleep 2
done
case "$state" in
  down)
    echo "moodle: cannot reach the database at ${MOODLE_DB_HOST:-moodle-db}" >&2
    exit 1
    ;;
  empty)
    echo "moodle: installing Moodle (a few minutes on the first start)"
    as_www php "$MOODLE_DIR/admin/cli/install_database.php" \
        --agree-license --lang=en \
        --adminuser=admin --adminpass="$MOODLE_ADMIN_PASSWORD" \
        --adminemail="${MOODLE_ADMIN_EMAIL:-admin@example.com}" \
        --fullname="${MOODLE_SITE_NAME:-OpenEduCat Moodle}" \
        --shortname="${MOODLE_SITE_SHORTNAME:-oecmoodle}"
    ;;
  installed)
    echo "moodle: upgrading Moodle and its plugins if the image is newer"
    as_www php "$MOODLE_DIR/admin/cli/upgrade.php" --non-interactive
    ;;
  partial)
    db=${MOODLE_DB_NAME:-moodle}
    cat >&2 <<MSG
moodle: the database "$db" holds Moodle tables but no installed version: the
first install was interrupted, and Moodle's installer cannot finish it. Empty
that database, then start Moodle again (from the directory of
docker-compose.yml):

  docker compose exec moodle-db sh -c 'mariadb -uroot -p"\$MARIADB_ROOT_PASSWORD" -e "DROP DATABASE $db; CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"'
  docker compose up -d moodle

(The database user keeps its rights on "$db".) Or start from nothing, Odoo's
data included: docker compose down -v && docker compose up -d
MSG
    exit 1
    ;;
  *)
    echo "moodle: unexpected database state: $state" >&2
    exit 1
    ;;
esac

echo "moodle: setting the admin password from MOODLE_ADMIN_PASSWORD"
as_www php "$OEC_LIB/admin_password.php" --moodledir="$MOODLE_DIR"

# The web services. Both ways give the same result: the user oecsync, the role
# oecsyncws with exactly the capabilities of the service's functions (built by
# the same code, the plugin's classes/local/setup.php), the service "OpenEduCat
# Sync" (oec_sync), the token MOODLE_SYNC_TOKEN (passed by name, never on a
# command line), the deletion functions only with MOODLE_WS_CLEANUP=true.
cleanup=${MOODLE_WS_CLEANUP:-false}
case "${cleanup,,}" in
  1|true|yes) cleanup=true ;;
  *) cleanup=false ;;
esac
use_plugin=${MOODLE_WS_PLUGIN:-true}
case "${use_plugin,,}" in
  0|false|no) use_plugin=false ;;
  *) use_plugin=true ;;
esac
plugin_setup=$MOODLE_DIR/local/openeducat/cli/setup.php
if [ "$use_plugin" = true ] && [ -f "$plugin_setup" ]; then
    echo "moodle: configuring the web services for the connector (local_openeducat's cli/setup.php)"
    setup_args=(--token-env=MOODLE_SYNC_TOKEN)
    if [ "$cleanup" = true ]; then
        setup_args+=(--with-cleanup)
    fi
    as_www php "$plugin_setup" "${setup_args[@]}"
    # No welcome mails for enrolments pushed by the connector (configure_ws.php
    # sets this too).
    as_www php "$MOODLE_DIR/admin/cli/cfg.php" --component=enrol_manual \
        --name=sendcoursewelcomemessage --set=0
else
    echo "moodle: configuring the web services for the connector (configure_ws.php)"
    as_www php "$OEC_LIB/configure_ws.php" --moodledir="$MOODLE_DIR" \
        --functions="$OEC_LIB/functions.tsv"
fi

# One cron run a minute: --keep-alive=0 ends each run once its tasks are done
# (by default a run stays and polls for new tasks for another 3 minutes).
if [ "${MOODLE_CRON:-true}" = true ]; then
    (
        while true; do
            as_www php "$MOODLE_DIR/admin/cli/cron.php" --keep-alive=0 >/dev/null 2>&1 || true
            sleep 60
        done
    ) &
fi

exec "$@"
