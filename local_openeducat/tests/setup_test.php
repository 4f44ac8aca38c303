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

namespace local_openeducat;

use local_openeducat\local\catalogue;
use local_openeducat\local\setup;

/**
 * Tests of the set-up (cli/setup.php).
 *
 * @package    local_openeducat
 * @category   test
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_openeducat\local\setup
 * @covers     \local_openeducat\local\catalogue
 */
final class setup_test extends \advanced_testcase {

    /**
     * The plugin's service.
     *
     * @return \stdClass
     */
    private function service(): \stdClass {
        global $DB;
        return $DB->get_record('external_services', ['component' => 'local_openeducat'], '*', MUST_EXIST);
    }

    public function test_service_holds_the_connector_functions(): void {
        global $DB;
        $this->resetAfterTest();
        $service = $this->service();

        $this->assertSame(catalogue::SERVICE_SHORTNAME, $service->shortname);
        $this->assertEquals(1, $service->enabled);
        $this->assertEquals(1, $service->restrictedusers);
        $held = $DB->get_fieldset_select('external_services_functions', 'functionname', 'externalserviceid = ?',
            [$service->id]);
        sort($held);
        $wanted = catalogue::service_functions();
        sort($wanted);
        $this->assertSame($wanted, $held);
        $this->assertContains('local_openeducat_get_course_completions', $held);
        $this->assertNotContains('core_user_delete_users', $held);
    }

    public function test_install_takes_over_an_existing_service(): void {
        global $CFG, $DB;
        require_once($CFG->dirroot . '/local/openeducat/db/install.php');
        require_once($CFG->libdir . '/upgradelib.php');
        $this->resetAfterTest();
        // The site as the connector's docker set-up leaves it before the plugin: a service
        // oec_sync of nobody's, with a user and a token.
        $ours = $this->service();
        $DB->delete_records('external_services_functions', ['externalserviceid' => $ours->id]);
        $DB->delete_records('external_services', ['id' => $ours->id]);
        $handmade = $DB->insert_record('external_services', (object) [
            'name' => catalogue::SERVICE_NAME, 'shortname' => catalogue::SERVICE_SHORTNAME, 'enabled' => 1,
            'restrictedusers' => 1, 'component' => null, 'timecreated' => time(), 'downloadfiles' => 0,
            'uploadfiles' => 0,
        ]);
        $DB->insert_record('external_services_functions',
            (object) ['externalserviceid' => $handmade, 'functionname' => 'core_user_delete_users']);
        $user = $this->getDataGenerator()->create_user();
        $DB->insert_record('external_tokens', (object) [
            'token' => str_repeat('cd34', 8), 'privatetoken' => random_string(64), 'tokentype' => EXTERNAL_TOKEN_PERMANENT,
            'userid' => $user->id, 'externalserviceid' => $handmade, 'contextid' => \context_system::instance()->id,
            'creatorid' => get_admin()->id, 'timecreated' => time(), 'validuntil' => 0,
        ]);

        // What Moodle does on install: install.php, then the services of db/services.php.
        xmldb_local_openeducat_install();
        external_update_descriptions('local_openeducat');

        $service = $this->service();
        $this->assertEquals($handmade, $service->id);
        $this->assertTrue($DB->record_exists('external_tokens',
            ['token' => str_repeat('cd34', 8), 'externalserviceid' => $handmade]));
        $held = $DB->get_fieldset_select('external_services_functions', 'functionname', 'externalserviceid = ?',
            [$handmade]);
        $this->assertEqualsCanonicalizing(catalogue::service_functions(), $held);
        $this->assertGreaterThan(0, (int) get_config('local_openeducat', 'trackingsince'));
    }

    public function test_setup_creates_then_keeps(): void {
        global $DB;
        $this->resetAfterTest();
        $this->setAdminUser();
        $system = \context_system::instance();

        $token = (new setup())->run();

        $this->assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $token);
        $user = $DB->get_record('user', ['username' => 'oecsync'], '*', MUST_EXIST);
        $role = $DB->get_record('role', ['shortname' => 'oecsyncws'], '*', MUST_EXIST);
        $this->assertTrue(user_has_role_assignment($user->id, $role->id, $system->id));
        $service = $this->service();
        $this->assertTrue($DB->record_exists('external_services_users',
            ['externalserviceid' => $service->id, 'userid' => $user->id]));
        $this->assertTrue($DB->record_exists('external_tokens',
            ['token' => $token, 'userid' => $user->id, 'externalserviceid' => $service->id]));

        // Exactly the capabilities of the service's functions on this site.
        $functions = $DB->get_fieldset_sql('SELECT f.name FROM {external_functions} f
            JOIN {external_services_functions} sf ON sf.functionname = f.name WHERE sf.externalserviceid = ?',
            [$service->id]);
        $expected = array_values(array_filter(catalogue::capabilities($functions), 'get_capability_info'));
        $held = $DB->get_fieldset_select('role_capabilities', 'capability', 'roleid = ? AND contextid = ?',
            [$role->id, $system->id]);
        sort($expected);
        sort($held);
        $this->assertSame($expected, $held);
        $this->assertContains('report/completion:view', $held);
        $this->assertContains('webservice/rest:use', $held);
        $this->assertNotContains('moodle/user:delete', $held);
        $assignable = $DB->get_fieldset_select('role_allow_assign', 'allowassign', 'roleid = ?', [$role->id]);
        $this->assertEqualsCanonicalizing(array_keys(get_archetype_roles('student') + get_archetype_roles('teacher')
            + get_archetype_roles('editingteacher')), $assignable);

        // Again: nothing new, the token kept and not returned; a capability added by hand is removed.
        assign_capability('moodle/site:config', CAP_ALLOW, $role->id, $system->id);
        $again = new setup();
        $this->assertNull($again->run());
        $this->assertFalse($DB->record_exists('role_capabilities', ['roleid' => $role->id,
            'capability' => 'moodle/site:config']));
        $this->assertSame(1, $DB->count_records('external_tokens', ['userid' => $user->id]));
        $this->assertContains('token: exists (shown only when created; --renew-token replaces it)', $again->log);

        // Renewed: a new value, the old one gone.
        $renewed = (new setup())->run(['renewtoken' => true]);
        $this->assertNotSame($token, $renewed);
        $this->assertFalse($DB->record_exists('external_tokens', ['token' => $token]));

        // Set to a given value: kept, never returned.
        $value = str_repeat('ab12', 10);
        $this->assertNull((new setup())->run(['token' => $value]));
        $this->assertSame([$value], $DB->get_fieldset_select('external_tokens', 'token', 'userid = ?', [$user->id]));
    }

    public function test_setup_adds_deletion_functions_on_request(): void {
        global $DB;
        $this->resetAfterTest();
        $this->setAdminUser();

        (new setup())->run(['withcleanup' => true]);

        $service = $this->service();
        $this->assertTrue($DB->record_exists('external_services_functions',
            ['externalserviceid' => $service->id, 'functionname' => 'core_user_delete_users']));
        $role = $DB->get_record('role', ['shortname' => 'oecsyncws']);
        $this->assertTrue($DB->record_exists('role_capabilities',
            ['roleid' => $role->id, 'capability' => 'moodle/user:delete']));

        // Without the option they go again, with their capabilities; a function removed by
        // someone else is put back.
        $DB->delete_records('external_services_functions',
            ['externalserviceid' => $service->id, 'functionname' => 'local_openeducat_get_attendance_logs']);
        (new setup())->run();
        $this->assertFalse($DB->record_exists('external_services_functions',
            ['externalserviceid' => $service->id, 'functionname' => 'core_user_delete_users']));
        $this->assertTrue($DB->record_exists('external_services_functions',
            ['externalserviceid' => $service->id, 'functionname' => 'local_openeducat_get_attendance_logs']));
        $this->assertFalse($DB->record_exists('role_capabilities',
            ['roleid' => $role->id, 'capability' => 'moodle/user:delete']));
    }
}
