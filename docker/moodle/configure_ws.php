<?php
// Configures this Moodle for the OpenEduCat connector from the connector's
// catalogue (functions.tsv), whether or not the companion plugin
// local_openeducat is installed. Idempotent. The entrypoint runs the plugin's
// own set-up (local/openeducat/cli/setup.php) when Moodle has the plugin, and
// this script otherwise (or with MOODLE_WS_PLUGIN=false).
//
//   php configure_ws.php --moodledir=/var/www/html --functions=functions.tsv [--plugindir=DIR]
//
// * web services on, REST protocol on; no welcome mails for manual enrolments;
// * external service "OpenEduCat Sync" (shortname oec_sync; the plugin's
//   service when the plugin is installed), enabled, restricted to authorised
//   users, holding exactly the functions of functions.tsv that this site has
//   (the deletion functions only when MOODLE_WS_CLEANUP=true);
// * user "oecsync" with the role "oecsyncws" at system level holding exactly
//   the capabilities those functions check (functions.tsv's fourth column)
//   plus webservice/rest:use, allowed to assign the student and teacher roles
//   and nothing else; the user authorised on the service;
// * a permanent token for that user and service whose value is
//   MOODLE_SYNC_TOKEN (replaced when the variable changes).
//
// The user, the role, the authorisation and the token are made by the
// plugin's code (local_openeducat/classes/local/setup.php, what its
// cli/setup.php runs), which needs the plugin's files, not the plugin
// installed: Moodle's copy (local/openeducat) when there is one, otherwise
// --plugindir (default: the repository's local_openeducat beside docker/).
//
// Prints no secret.

define('CLI_SCRIPT', true);

$options = getopt('', ['moodledir:', 'functions:', 'plugindir:']);
$moodledir = $options['moodledir'] ?? '/var/www/html';
$functionsfile = $options['functions'] ?? __DIR__ . '/functions.tsv';

require($moodledir . '/config.php');
require_once($CFG->libdir . '/clilib.php');
require_once($CFG->libdir . '/accesslib.php');
require_once($CFG->dirroot . '/webservice/lib.php');
require_once($CFG->dirroot . '/user/lib.php');

// The plugin's set-up code: autoloaded when the plugin is in Moodle's code
// tree, else read from its files.
if (!class_exists('local_openeducat\\local\\setup')) {
    $plugindirs = isset($options['plugindir']) ? [$options['plugindir']]
        : [$CFG->dirroot . '/local/openeducat', dirname(__DIR__, 2) . '/local_openeducat'];
    foreach ($plugindirs as $plugindir) {
        if (is_file($plugindir . '/classes/local/setup.php')) {
            require_once($plugindir . '/classes/local/catalogue.php');
            require_once($plugindir . '/classes/local/setup.php');
            break;
        }
    }
    if (!class_exists('local_openeducat\\local\\setup', false)) {
        cli_error('local_openeducat\'s classes/local/setup.php not found in ' . implode(' or ', $plugindirs)
            . ': pass --plugindir=<the local_openeducat folder>.');
    }
}
$setup = new \local_openeducat\local\setup();
// Prints what the plugin's code did since the last call.
$report = function() use ($setup): void {
    foreach ($setup->log as $line) {
        cli_writeln($line);
    }
    $setup->log = [];
};

$token = trim((string) getenv('MOODLE_SYNC_TOKEN'));
if (!preg_match('/^[A-Za-z0-9]{32,128}$/', $token)) {
    cli_error('MOODLE_SYNC_TOKEN must be 32 to 128 letters and digits.');
}
$cleanup = in_array(strtolower((string) getenv('MOODLE_WS_CLEANUP')), ['1', 'true', 'yes'], true);

\core\session\manager::set_user(get_admin());
$username = 'oecsync';
$roleshortname = 'oecsyncws';

// Site settings.
$setup->enable_web_services();
// No welcome mails for enrolments pushed by the connector.
set_config('sendcoursewelcomemessage', 0, 'enrol_manual');
cli_writeln('web services: enabled, protocols ' . get_config('core', 'webserviceprotocols'));

// The web-service user.
try {
    $user = $setup->user($username);
} catch (moodle_exception $e) {
    cli_error($e->debuginfo ?: $e->getMessage());
}
cli_writeln("user {$username}: " . ($setup->log ? 'created' : 'exists'));
$setup->log = [];

// The connector's functions (and the capabilities each one checks) that this
// site has.
$wanted = [];
$functioncapabilities = [];
foreach (file($functionsfile, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
    [$name, $feature, $legacy, $caps] = array_pad(explode("\t", $line), 4, '');
    if ($feature === 'cleanup' && !$cleanup) {
        continue;
    }
    if ($DB->record_exists('external_functions', ['name' => $name])) {
        $onsite = $name;
    } else if ($legacy !== '' && $DB->record_exists('external_functions', ['name' => $legacy])) {
        $onsite = $legacy;
    } else {
        cli_writeln("function {$name}: not on this site, left out");
        continue;
    }
    $wanted[] = $onsite;
    $functioncapabilities[$onsite] = array_filter(explode(',', trim($caps)));
}

// Its role, at system level: exactly the capabilities of the functions in the
// service (the catalogue's list, functions.tsv's fourth column) plus
// webservice/rest:use; anything else it holds at system level is removed, so a
// role created by an older set-up (the manager archetype's defaults) is
// narrowed to the list.
$capabilities = ['webservice/rest:use' => true];
foreach ($wanted as $name) {
    foreach ($functioncapabilities[$name] as $capability) {
        $capabilities[$capability] = true;
    }
}
$setup->grant($user, $roleshortname, array_keys($capabilities));
$report();

// The external service.
$webservice = new webservice();
$service = $DB->get_record('external_services', ['shortname' => 'oec_sync']);
if (!$service) {
    $serviceid = $webservice->add_external_service((object) [
        'name' => 'OpenEduCat Sync',
        'shortname' => 'oec_sync',
        'enabled' => 1,
        'restrictedusers' => 1,
        'downloadfiles' => 0,
        'uploadfiles' => 0,
        'requiredcapability' => '',
    ]);
    $service = $DB->get_record('external_services', ['id' => $serviceid], '*', MUST_EXIST);
    cli_writeln('service oec_sync: created');
} else {
    $service->enabled = 1;
    $service->restrictedusers = 1;
    $webservice->update_external_service($service);
}
foreach ($wanted as $name) {
    if (!$webservice->service_function_exists($name, $service->id)) {
        $webservice->add_external_function_to_service($name, $service->id);
    }
}
foreach ($DB->get_records('external_services_functions', ['externalserviceid' => $service->id]) as $held) {
    if (!in_array($held->functionname, $wanted, true)) {
        $webservice->remove_external_function_from_service($held->functionname, $service->id);
    }
}
$setup->authorise($user, $service);
$report();
cli_writeln('service oec_sync: ' . count($wanted) . ' functions, authorised user ' . $username);

// The token: exactly MOODLE_SYNC_TOKEN, so that Odoo can be given the same value.
try {
    $setup->token($user, $service, $token);
} catch (moodle_exception $e) {
    cli_error($e->debuginfo ?: $e->getMessage());
}
$report();
cli_writeln('done');
