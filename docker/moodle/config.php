<?php
// Moodle configuration of the compose stack: every value comes from the
// container's environment (docker-compose.yml and .env).

unset($CFG);
global $CFG;
$CFG = new stdClass();

$CFG->dbtype    = 'mariadb';
$CFG->dblibrary = 'native';
$CFG->dbhost    = getenv('MOODLE_DB_HOST') ?: 'moodle-db';
$CFG->dbname    = getenv('MOODLE_DB_NAME') ?: 'moodle';
$CFG->dbuser    = getenv('MOODLE_DB_USER') ?: 'moodle';
$CFG->dbpass    = getenv('MOODLE_DB_PASSWORD');
$CFG->prefix    = 'mdl_';
$CFG->dboptions = [
    'dbpersist' => 0,
    'dbport' => '',
    'dbsocket' => '',
    'dbcollation' => 'utf8mb4_unicode_ci',
];

// Browsers reach this Moodle at MOODLE_WWWROOT (http://localhost:8080); Odoo,
// in the next container, at http://moodle (the compose service name). Moodle
// redirects every request whose host is not its wwwroot's, so a request that
// names the internal host gets the internal wwwroot.
$internalhost = getenv('MOODLE_INTERNAL_HOST') ?: 'moodle';
if (isset($_SERVER['HTTP_HOST']) && $_SERVER['HTTP_HOST'] === $internalhost) {
    $CFG->wwwroot = 'http://' . $internalhost;
} else {
    $CFG->wwwroot = getenv('MOODLE_WWWROOT') ?: 'http://localhost:8080';
}
$CFG->dataroot  = getenv('MOODLE_DATAROOT') ?: '/var/moodledata';
$CFG->admin     = 'admin';
$CFG->directorypermissions = 02777;

// This stack has no mail server.
$CFG->noemailever = true;

require_once(__DIR__ . '/lib/setup.php');
