#!/bin/bash
# Entry point of the Moodle container: install Moodle on the first start (or
# upgrade it after a new image), configure the web services for the connector
# (configure_ws.php), run Moodle's cron every minute, then start the command
# (apache2-foreground).
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
esac

echo "moodle: configuring the web services for the connector"
as_www php "$OEC_LIB/configure_ws.php" --moodledir="$MOODLE_DIR" \
    --functions="$OEC_LIB/functions.tsv"

if [ "${MOODLE_CRON:-true}" = true ]; then
    (
        while true; do
            as_www php "$MOODLE_DIR/admin/cli/cron.php" >/dev/null 2>&1 || true
            sleep 60
        done
    ) &
fi

exec "$@"
