#!/bin/bash
# Health check of the Moodle container (docker-compose.yml): asks Moodle, by
# its internal host name (MOODLE_INTERNAL_HOST, the name Odoo uses), for one
# language string through lib/ajax/service-nologin.php. That runs PHP, loads
# Moodle's configuration from the database and answers JSON, and it starts no
# session (NO_MOODLE_COOKIES) and writes no log row, so a check every 10 s
# leaves nothing behind. (webservice/rest/server.php without a token would
# log a failed web-service login each time.)
set -euo pipefail

answer=$(curl -fsS --max-time 8 -H "Host: ${MOODLE_INTERNAL_HOST:-moodle}" --get \
    --data-urlencode 'args=[{"index":0,"methodname":"core_get_string","args":{"stringid":"ok","component":"moodle"}}]' \
    http://localhost/lib/ajax/service-nologin.php)
case "$answer" in
  *'"error":false'*) exit 0 ;;
  *) echo "unexpected answer: ${answer:0:300}" >&2; exit 1 ;;
esac
