<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <https://www.gnu.org/licenses/>.

/**
 * Set the site up for the OpenEduCat connector (idempotent).
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

[$options, $unrecognised] = cli_get_params([
    'help' => false,
    'username' => 'oecsync',
    'role' => 'oecsyncws',
    'renew-token' => false,
    'token-env' => '',
    'with-cleanup' => false,
    'quiet' => false,
], [
    'h' => 'help',
    'q' => 'quiet',
]);

if ($unrecognised) {
    cli_error(get_string('cliunknowoption', 'admin', implode("\n  ", $unrecognised)));
}

if ($options['help']) {
    echo "Set this Moodle up for the OpenEduCat connector. Safe to run again: each run brings the site to the
same state and prints what it changed.

- web services and the REST protocol on;
- the web-service user (default oecsync; manual authentication, a random password nobody knows);
- its role (default oecsyncws) at system level with exactly the capabilities that the functions of the
  service \"OpenEduCat Sync\" (oec_sync) check, plus webservice/rest:use, allowed to assign the student and
  teacher roles; anything else the role holds at system level is removed;
- that service enabled, restricted, holding the plugin's functions (put back if something changed them),
  and the user authorised on it;
- a permanent token for the user and the service. A new token is printed once, on standard output, as
  the line \"token: <value>\"; a token that exists is never printed.

Options:
--username=NAME      the web-service user (default oecsync)
--role=SHORTNAME     its role (default oecsyncws)
--renew-token        replace the token with a new one (printed)
--token-env=VAR      set the token to the value of the environment variable VAR (32 to 128 letters and
                     digits; never printed), e.g. the value the connector was given
--with-cleanup       also put the deletion functions in the service (the connector's contract tests on a
                     test site; never on a production site). Moodle removes them again when the plugin is
                     upgraded, and so does a run without this option.
-q, --quiet          print nothing (a new token is not shown either)
-h, --help           this help

Example:
  php local/openeducat/cli/setup.php
";
    exit(0);
}

$token = null;
if ($options['token-env'] !== '') {
    $token = getenv($options['token-env']);
    if ($token === false || trim($token) === '') {
        cli_error("The environment variable {$options['token-env']} is empty.");
    }
    $token = trim($token);
}

\core\session\manager::set_user(get_admin());

$setup = new \local_openeducat\local\setup();
try {
    $created = $setup->run([
        'username' => $options['username'],
        'rolename' => $options['role'],
        'renewtoken' => (bool) $options['renew-token'],
        'token' => $token,
        'withcleanup' => (bool) $options['with-cleanup'],
    ]);
} catch (moodle_exception $e) {
    cli_error($e->debuginfo ?: $e->getMessage());
}

if (!$options['quiet']) {
    foreach ($setup->log as $line) {
        cli_writeln($line);
    }
    if ($created !== null) {
        // The only secret this script prints, once.
        cli_writeln("token: {$created}");
    }
}
exit(0);
