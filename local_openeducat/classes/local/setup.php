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

namespace local_openeducat\local;

use context_system;
use moodle_exception;

/**
 * Sets a site up for the OpenEduCat connector: web services, the user, its role, the token.
 *
 * Idempotent: each run brings the site to the same state and says what it changed.
 * - web services on, REST protocol on;
 * - the web-service user (manual authentication, a random password nobody knows);
 * - its role at system level holding exactly the capabilities that the functions of the
 *   plugin's service check on this site (classes/local/catalogue.php) plus
 *   webservice/rest:use, allowed to assign the student and teacher roles and nothing else;
 *   anything else the role holds at system level is removed;
 * - the user authorised on the plugin's service "OpenEduCat Sync" (restricted users);
 * - a permanent token for the user and the service: created when there is none (its value
 *   returned, once), kept otherwise, replaced on request, or set to a given value.
 *
 * run() does all of it for the plugin's service. Its steps are public so that the connector's
 * docker set-up (docker/moodle/configure_ws.php in the connector's repository), which can also
 * configure a site without this plugin, builds the same user, role and token with this code: it
 * loads this file and catalogue.php itself when the plugin is not in Moodle's code tree.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class setup {

    /** @var string[] The archetypes of the roles the connector assigns in courses. */
    public const ASSIGNABLE_ARCHETYPES = ['student', 'teacher', 'editingteacher'];

    /** @var string[] What the run said, line by line (no secret). */
    public array $log = [];

    /**
     * Set up.
     *
     * @param array $options username, rolename (shortname), renewtoken (bool), token (a value to set,
     *     or null), withcleanup (bool: add the deletion functions, for the connector's contract tests)
     * @return string|null the token when one was created (null when it was kept or set from a given value)
     */
    public function run(array $options = []): ?string {
        global $CFG, $DB;
        require_once($CFG->libdir . '/accesslib.php');
        require_once($CFG->dirroot . '/user/lib.php');
        require_once($CFG->dirroot . '/webservice/lib.php');

        $options += [
            'username' => 'oecsync',
            'rolename' => 'oecsyncws',
            'renewtoken' => false,
            'token' => null,
            'withcleanup' => false,
        ];

        $this->enable_web_services();
        $user = $this->user($options['username']);
        $service = $this->service($options['withcleanup']);
        $functions = $DB->get_fieldset_sql(
            "SELECT f.name
               FROM {external_functions} f
               JOIN {external_services_functions} sf ON sf.functionname = f.name
              WHERE sf.externalserviceid = ?
           ORDER BY f.name", [$service->id]);
        $this->grant($user, $options['rolename'], catalogue::capabilities($functions));
        $this->authorise($user, $service);
        $this->log[] = "service {$service->shortname}: " . count($functions) . ' functions on this site';

        return $this->token($user, $service, $options['token'], (bool) $options['renewtoken']);
    }

    /**
     * The role with exactly these capabilities (see role()), assigned to the user at system level.
     *
     * @param \stdClass $user
     * @param string $rolename the role's shortname
     * @param string[] $capabilities
     * @return int role id
     */
    public function grant(\stdClass $user, string $rolename, array $capabilities): int {
        global $CFG;
        require_once($CFG->libdir . '/accesslib.php');
        $syscontext = context_system::instance();
        $roleid = $this->role($rolename, $capabilities);
        if (!user_has_role_assignment($user->id, $roleid, $syscontext->id)) {
            role_assign($roleid, $user->id, $syscontext->id);
            $this->log[] = "role {$rolename}: assigned to {$user->username} at system level";
        }
        accesslib_clear_all_caches(true);
        return $roleid;
    }

    /**
     * The user authorised on the service (a service restricted to authorised users).
     *
     * @param \stdClass $user
     * @param \stdClass $service
     */
    public function authorise(\stdClass $user, \stdClass $service): void {
        global $CFG, $DB;
        require_once($CFG->dirroot . '/webservice/lib.php');
        if (!$DB->record_exists('external_services_users', ['externalserviceid' => $service->id, 'userid' => $user->id])) {
            (new \webservice())->add_ws_authorised_user((object) [
                'externalserviceid' => $service->id,
                'userid' => $user->id,
                'iprestriction' => '',
                'validuntil' => 0,
            ]);
            $this->log[] = "service {$service->shortname}: {$user->username} authorised";
        }
    }

    /**
     * Web services on, with the REST protocol.
     */
    public function enable_web_services(): void {
        if (empty(get_config('core', 'enablewebservices'))) {
            set_config('enablewebservices', 1);
            $this->log[] = 'web services: enabled';
        }
        $protocols = array_filter(explode(',', (string) get_config('core', 'webserviceprotocols')));
        if (!in_array('rest', $protocols)) {
            $protocols[] = 'rest';
            set_config('webserviceprotocols', implode(',', $protocols));
            $this->log[] = 'web services: REST protocol enabled';
        }
    }

    /**
     * The web-service user, created when missing.
     *
     * @param string $username
     * @return \stdClass
     */
    public function user(string $username): \stdClass {
        global $CFG, $DB;
        require_once($CFG->dirroot . '/user/lib.php');
        $user = $DB->get_record('user', ['username' => $username, 'mnethostid' => $CFG->mnet_localhost_id, 'deleted' => 0]);
        if ($user) {
            if (is_siteadmin($user)) {
                throw new moodle_exception('error', 'moodle', '', null,
                    "$username is a site administrator: give the connector a user of its own");
            }
            return $user;
        }
        $userid = user_create_user((object) [
            'username' => $username,
            'auth' => 'manual',
            'firstname' => 'OpenEduCat',
            'lastname' => 'Sync',
            'email' => $username . '@example.invalid',
            'confirmed' => 1,
            'mnethostid' => $CFG->mnet_localhost_id,
            // Nobody logs in as this user: it only acts through its token.
            'password' => 'Ws-' . random_string(32) . '-9a',
        ], true, false);
        $this->log[] = "user {$username}: created";
        return $DB->get_record('user', ['id' => $userid], '*', MUST_EXIST);
    }

    /**
     * The plugin's service: enabled, restricted, its functions; the deletion functions on request.
     *
     * @param bool $withcleanup
     * @return \stdClass
     */
    private function service(bool $withcleanup): \stdClass {
        global $DB;
        $service = $DB->get_record('external_services', ['component' => 'local_openeducat']);
        if (!$service) {
            throw new moodle_exception('error', 'moodle', '', null,
                'The service of local_openeducat is missing: run admin/cli/upgrade.php first');
        }
        if (!$service->enabled || !$service->restrictedusers) {
            $DB->update_record('external_services', (object) [
                'id' => $service->id, 'enabled' => 1, 'restrictedusers' => 1, 'timemodified' => time(),
            ]);
            $service->enabled = $service->restrictedusers = 1;
            $this->log[] = "service {$service->shortname}: enabled, restricted to authorised users";
        }
        // The functions: those Moodle gives the service on install and upgrade (db/services.php),
        // put back if something removed them; the deletion functions only on request. Moodle
        // resets a built-in service's functions on each upgrade of the plugin: run the set-up
        // again after an upgrade when the deletion functions are wanted.
        $wanted = array_flip(catalogue::service_functions($withcleanup));
        $held = $DB->get_records_menu('external_services_functions', ['externalserviceid' => $service->id],
            '', 'id, functionname');
        $added = 0;
        foreach (array_keys($wanted) as $name) {
            if (!in_array($name, $held, true)) {
                $DB->insert_record('external_services_functions',
                    (object) ['externalserviceid' => $service->id, 'functionname' => $name]);
                $added++;
            }
        }
        $removed = 0;
        foreach ($held as $id => $name) {
            if (!isset($wanted[$name])) {
                $DB->delete_records('external_services_functions', ['id' => $id]);
                $removed++;
            }
        }
        if ($added || $removed) {
            $this->log[] = "service {$service->shortname}: {$added} functions added, {$removed} removed"
                . ($withcleanup ? ' (with the deletion functions)' : '');
        }
        return $service;
    }

    /**
     * The role: exactly these capabilities at system level, assigns students and teachers only.
     *
     * @param string $shortname
     * @param string[] $capabilities
     * @return int role id
     */
    private function role(string $shortname, array $capabilities): int {
        global $DB;
        $syscontext = context_system::instance();
        $description = 'The OpenEduCat connector\'s web-service user: the capabilities of the functions of the '
            . 'service "' . catalogue::SERVICE_NAME . '" and webservice/rest:use, nothing else.';
        $role = $DB->get_record('role', ['shortname' => $shortname]);
        if (!$role) {
            $roleid = create_role('OpenEduCat Sync web service', $shortname, $description);
            $this->log[] = "role {$shortname}: created";
        } else {
            $roleid = (int) $role->id;
            if ($role->archetype !== '' || $role->description !== $description) {
                // No archetype: "reset" in Moodle's role editor must not bring back other capabilities.
                $DB->update_record('role', (object) ['id' => $roleid, 'archetype' => '', 'description' => $description]);
            }
        }
        set_role_contextlevels($roleid, [CONTEXT_SYSTEM]);

        $wanted = [];
        foreach ($capabilities as $capability) {
            if (get_capability_info($capability)) {
                $wanted[$capability] = true;
            } else {
                $this->log[] = "capability {$capability}: not on this site, left out";
            }
        }
        $held = $DB->get_records('role_capabilities', ['roleid' => $roleid, 'contextid' => $syscontext->id]);
        $granted = [];
        foreach ($held as $row) {
            if (isset($wanted[$row->capability]) && $row->permission == CAP_ALLOW) {
                $granted[$row->capability] = true;
            } else if (isset($wanted[$row->capability])) {
                continue;
            } else {
                if (get_capability_info($row->capability)) {
                    unassign_capability($row->capability, $roleid, $syscontext->id);
                } else {
                    $DB->delete_records('role_capabilities', ['id' => $row->id]);
                }
                $this->log[] = "role {$shortname}: {$row->capability} removed";
            }
        }
        $added = 0;
        foreach (array_keys($wanted) as $capability) {
            if (!isset($granted[$capability])) {
                assign_capability($capability, CAP_ALLOW, $roleid, $syscontext->id, true);
                $added++;
            }
        }

        // Allowed to assign the student and teacher roles, nothing else; no right to override,
        // switch to or view other roles.
        $assignable = [];
        foreach (self::ASSIGNABLE_ARCHETYPES as $archetype) {
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
        $this->log[] = "role {$shortname}: " . count($wanted) . ' capabilities' . ($added ? " ({$added} added)" : '')
            . ', may assign ' . implode(', ', $assignable);
        return $roleid;
    }

    /**
     * The permanent token of the user for the service.
     *
     * @param \stdClass $user
     * @param \stdClass $service
     * @param string|null $value a value to set (kept when it is already the token)
     * @param bool $renew replace the token with a new one
     * @return string|null the new token, when one was created here
     */
    public function token(\stdClass $user, \stdClass $service, ?string $value, bool $renew = false): ?string {
        global $CFG, $DB;
        require_once($CFG->dirroot . '/webservice/lib.php');
        $tokens = $DB->get_records('external_tokens', [
            'userid' => $user->id,
            'externalserviceid' => $service->id,
            'tokentype' => EXTERNAL_TOKEN_PERMANENT,
        ], 'id');
        if ($value !== null) {
            if (!preg_match('/^[A-Za-z0-9]{32,128}$/', $value)) {
                throw new moodle_exception('error', 'moodle', '', null, 'A token must be 32 to 128 letters and digits');
            }
            $current = false;
            foreach ($tokens as $existing) {
                if ($existing->token === $value) {
                    $current = true;
                } else {
                    $DB->delete_records('external_tokens', ['id' => $existing->id]);
                }
            }
            if ($current) {
                $this->log[] = 'token: unchanged';
                return null;
            }
            if ($DB->record_exists('external_tokens', ['token' => $value])) {
                throw new moodle_exception('error', 'moodle', '', null, 'That token belongs to another user or service');
            }
            $this->insert_token($user, $service, $value);
            $this->log[] = 'token: set to the value given';
            return null;
        }
        if ($tokens && !$renew) {
            $this->log[] = 'token: exists (shown only when created; --renew-token replaces it)';
            return null;
        }
        foreach ($tokens as $existing) {
            $DB->delete_records('external_tokens', ['id' => $existing->id]);
        }
        $token = bin2hex(random_bytes(16));
        $this->insert_token($user, $service, $token);
        $this->log[] = $tokens ? 'token: replaced' : 'token: created';
        return $token;
    }

    /**
     * Store a permanent token.
     *
     * @param \stdClass $user
     * @param \stdClass $service
     * @param string $token
     */
    private function insert_token(\stdClass $user, \stdClass $service, string $token): void {
        global $DB, $USER;
        $DB->insert_record('external_tokens', (object) [
            'token' => $token,
            'privatetoken' => random_string(64),
            'tokentype' => EXTERNAL_TOKEN_PERMANENT,
            'userid' => $user->id,
            'externalserviceid' => $service->id,
            'contextid' => context_system::instance()->id,
            'creatorid' => !empty($USER->id) ? $USER->id : get_admin()->id,
            'timecreated' => time(),
            'validuntil' => 0,
            'iprestriction' => null,
            'name' => 'OpenEduCat connector',
        ]);
    }
}
