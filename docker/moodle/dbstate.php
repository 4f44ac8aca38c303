<?php
// Prints the state of Moodle's database, for entrypoint.sh:
//   down       no connection;
//   empty      no Moodle table yet (a new install);
//   installed  the version row is in mdl_config;
//   partial    Moodle tables but no version row: a first install that was
//              interrupted. Moodle's installer refuses such a database, and
//              nothing can finish it: the database must be emptied.

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
if ($result && $result->num_rows) {
    echo "installed\n";
    exit(0);
}
$tables = $db->query("SHOW TABLES LIKE 'mdl\\_%'");
if ($tables === false) {
    echo "down\n";
    exit(0);
}
echo $tables->num_rows ? "partial\n" : "empty\n";
