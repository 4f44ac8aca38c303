<?php
// Configures this Moodle for the OpenEduCat connector. Idempotent: the
// entrypoint runs it on every start.
//
//   php configure_ws.php --moodledir=/var/www/html --functions=functions.tsv
//
// * web services on, REST protocol on;
// * user "oecsync" (manual authentication, random password, not an admin) with
//   the role "oecsyncws" at system level holding exactly the capabilities the
//   service's functions check (functions.tsv's fourth column, from the
//   connector's catalogue) plus webservice/rest:use, and allowed to assign the
//   student and teacher roles (roles of those archetypes) and nothing else;
// * external service "OpenEduCat Sync" (shortname oec_sync), restricted to
//   that user, holding exactly the functions of functions.tsv (the connector's
//   catalogue; the deletion functions only when MOODLE_WS_CLEANUP=true);
// * a permanent token for that user and service whose value is
//   MOODLE_SYNC_TOKEN (replaced when the variable changes).
//
// Prints no secret.

define('CLI_SCRIPT', true);

$options = getopt('', ['moodledir:', 'functions:']);
$moodledir = $options['moodledir'] ?? '/var/www/html';
$functionsfile = $options['functions'] ?? __DIR__ . '/functions.tsv';

require($moodledir . '/config.php');
require_once($CFG->libdir . '/clilib.php');
require_once($CFG->libdir . '/accesslib.php');
require_once($CFG->dirroot . '/webservice/lib.php');
require_once($CFG->dirroot . '/user/lib.php');

$token = trim((string) getenv('MOODLE_SYNC_TOKEN'));
if (!preg_match('/^[A-Za-z0-9]{32,128}$/', $token)) {
    cli_error('MOODLE_SYNC_TOKEN must be 32 to 128 letters and digits.');
}
$cleanup = in_array(strtolower((string) getenv('MOODLE_WS_CLEANUP')), ['1', 'true', 'yes'], true);

\core\session\manager::set_user(get_admin());
$syscontext = context_system::instance();

// Site settings.
set_config('enablewebservices', 1);
$protocols = array_filter(explode(',', (string) get_config('core', 'webserviceprotocols')));
if (!in_array('rest', $protocols)) {
    $protocols[] = 'rest';
}
set_config('webserviceprotocols', implode(',', $protocols));
// No welcome mails for enrolments pushed by the connector.
set_config('sendcoursewelcomemessage', 0, 'enrol_manual');
cli_writeln('web services: enabled, protocols ' . implode(',', $protocols));

// The web-service user.
$username = 'oecsync';
$user = $DB->get_record('user',
    ['username' => $username, 'mnethostid' => $CFG->mnet_localhost_id, 'deleted' => 0]);
if (!$user) {
    $userid = user_create_user((object) [
        'username' => $username,
        'auth' => 'manual',
        'firstname' => 'OpenEduCat',
        'lastname' => 'Sync',
        'email' => 'oecsync@example.invalid',
        'confirmed' => 1,
        'mnethostid' => $CFG->mnet_localhost_id,
        // Nobody logs in as this user: it only acts through its token.
        'password' => 'Ws-' . random_string(32) . '-9a',
    ], true, false);
    $user = $DB->get_record('user', ['id' => $userid], '*', MUST_EXIST);
    cli_writeln("user {$username}: created");
} else {
    cli_writeln("user {$username}: exists");
}

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
// webservice/rest:use, and the right to assign the student and teacher roles
// (enrol_manual_enrol_users checks it). Anything else the role holds at system
// level is removed, so a role created by an older set-up (the manager
// archetype's defaults) is narrowed to the list.
$roleshortname = 'oecsyncws';
$roledescription = 'The OpenEduCat connector\'s web-service user: the capabilities of the '
    . 'functions of the service "OpenEduCat Sync" and webservice/rest:use, nothing else.';
$role = $DB->get_record('role', ['shortname' => $roleshortname]);
if (!$role) {
    $roleid = create_role('OpenEduCat Sync web service', $roleshortname, $roledescription);
    cli_writeln("role {$roleshortname}: created");
} else {
    $roleid = $role->id;
    if ($role->archetype !== '' || $role->description !== $roledescription) {
        // No archetype: "reset" in Moodle's role editor must not bring back a
        // manager's capabilities.
        $DB->update_record('role', (object) [
            'id' => $roleid, 'archetype' => '', 'description' => $roledescription,
        ]);
    }
}
set_role_contextlevels($roleid, [CONTEXT_SYSTEM]);

$capabilities = ['webservice/rest:use' => true];
foreach ($wanted as $name) {
    foreach ($functioncapabilities[$name] as $capability) {
        $capabilities[$capability] = true;
    }
}
$granted = 0;
foreach (array_keys($capabilities) as $capability) {
    if (get_capability_info($capability)) {
        assign_capability($capability, CAP_ALLOW, $roleid, $syscontext->id, true);
        $granted++;
    } else {
        cli_writeln("capability {$capability}: not on this site, left out");
    }
}
$removed = 0;
foreach ($DB->get_records('role_capabilities', ['roleid' => $roleid, 'contextid' => $syscontext->id]) as $held) {
    if (!isset($capabilities[$held->capability])) {
        if (get_capability_info($held->capability)) {
            unassign_capability($held->capability, $roleid, $syscontext->id);
        } else {
            $DB->delete_records('role_capabilities', ['id' => $held->id]);
        }
        $removed++;
    }
}

// Allowed to assign the student and teacher roles, nothing else; no right to
// override, switch to or view other roles.
$assignable = [];
foreach (['student', 'teacher', 'editingteacher'] as $archetype) {
    foreach (get_archetype_roles($archetype) as $target) {
        $assignable[$target->id] = $target->shortname;
    }
}
foreach ($DB->get_records('role_allow_assign', ['roleid' => $roleid]) as $allowed) {
    if (!isset($assignable[$allowed->allowassign])) {
        $DB->delete_records('role_allow_assign', ['id' => $allowed->id]);
    }
}
foreach (array_keys($assignable) as $targetid) {
    if (!$DB->record_exists('role_allow_assign', ['roleid' => $roleid, 'allowassign' => $targetid])) {
        core_role_set_assign_allowed($roleid, $targetid);
    }
}
foreach (['override', 'switch', 'view'] as $type) {
    $DB->delete_records('role_allow_' . $type, ['roleid' => $roleid]);
}

if (!user_has_role_assignment($user->id, $roleid, $syscontext->id)) {
    role_assign($roleid, $user->id, $syscontext->id);
}
accesslib_clear_all_caches(true);
cli_writeln("role {$roleshortname}: {$granted} capabilities" . ($removed ? " ({$removed} removed)" : '')
    . ', may assign ' . implode(', ', $assignable) . ", assigned to {$username}");

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
if (!$DB->record_exists('external_services_users',
        ['externalserviceid' => $service->id, 'userid' => $user->id])) {
    $webservice->add_ws_authorised_user((object) [
        'externalserviceid' => $service->id,
        'userid' => $user->id,
        'iprestriction' => '',
        'validuntil' => 0,
    ]);
}
cli_writeln('service oec_sync: ' . count($wanted) . ' functions, authorised user ' . $username);

// The token: exactly MOODLE_SYNC_TOKEN, so that Odoo can be given the same value.
$tokens = $DB->get_records('external_tokens', [
    'userid' => $user->id,
    'externalserviceid' => $service->id,
    'tokentype' => EXTERNAL_TOKEN_PERMANENT,
]);
$current = false;
foreach ($tokens as $existing) {
    if ($existing->token === $token) {
        $current = true;
    } else {
        $DB->delete_records('external_tokens', ['id' => $existing->id]);
    }
}
if (!$current) {
    if ($DB->record_exists('external_tokens', ['token' => $token])) {
        cli_error('MOODLE_SYNC_TOKEN is already the token of another user or service.');
    }
    $DB->insert_record('external_tokens', (object) [
        'token' => $token,
        'privatetoken' => random_string(64),
        'tokentype' => EXTERNAL_TOKEN_PERMANENT,
        'userid' => $user->id,
        'externalserviceid' => $service->id,
        'contextid' => $syscontext->id,
        'creatorid' => get_admin()->id,
        'timecreated' => time(),
        'validuntil' => 0,
        'name' => 'OpenEduCat connector (compose)',
    ]);
    cli_writeln('token: set from MOODLE_SYNC_TOKEN');
} else {
    cli_writeln('token: unchanged');
}
cli_writeln('done');
