<?php
// Prints the state of Moodle's database: "down" (no connection), "empty" (no
// Moodle tables yet) or "installed". Used by entrypoint.sh.

mysqli_report(MYSQLI_REPORT_OFF);
$db = @new mysqli(
    getenv('MOODLE_DB_HOST') ?: 'moodle-db',
    getenv('MOODLE_DB_USER') ?: 'moodle',
    (string) getenv('MOODLE_DB_PASSWORD'),
    getenv('MOODLE_DB_NAME') ?: 'moodle'
);
if ($db->connect_errno) {
    echo "down\n";
    exit(0);
}
$result = $db->query("SELECT value FROM mdl_config WHERE name = 'version'");
echo ($result && $result->num_rows) ? "installed\n" : "empty\n";
