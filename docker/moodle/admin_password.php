<?php
// Gives Moodle's "admin" user the password MOODLE_ADMIN_PASSWORD. The
// entrypoint runs it on every start, so the variable is the admin's password
// whatever was set at install or in Moodle since: change it in .env and run
// `docker compose up -d`. Writes only when the password differs; prints no
// secret.
//
//   php admin_password.php --moodledir=/var/www/html

define('CLI_SCRIPT', true);

$options = getopt('', ['moodledir:']);
$moodledir = $options['moodledir'] ?? '/var/www/html';

require($moodledir . '/config.php');
require_once($CFG->libdir . '/clilib.php');

$password = (string) getenv('MOODLE_ADMIN_PASSWORD');
if ($password === '') {
    cli_error('MOODLE_ADMIN_PASSWORD is not set.');
}

$admin = $DB->get_record('user',
    ['username' => 'admin', 'mnethostid' => $CFG->mnet_localhost_id, 'deleted' => 0]);
if (!$admin) {
    cli_writeln('admin password: no user "admin" on this site, nothing set');
    exit(0);
}
if ($admin->auth !== 'manual') {
    cli_writeln("admin password: user \"admin\" logs in with {$admin->auth}, nothing set");
    exit(0);
}
if (validate_internal_user_password($admin, $password)) {
    cli_writeln('admin password: unchanged (MOODLE_ADMIN_PASSWORD)');
} else {
    update_internal_user_password($admin, $password);
    unset_user_preference('auth_forcepasswordchange', $admin);
    cli_writeln('admin password: set from MOODLE_ADMIN_PASSWORD');
}
