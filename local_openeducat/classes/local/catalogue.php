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

/**
 * The web-service functions the OpenEduCat connector calls, and the capabilities each one checks.
 *
 * A copy of the connector's catalogue (openeducat_moodle/moodle/catalogue.py in the connector's
 * repository; tests/contract/test_plugin.py there fails when the two differ). The service
 * declared in db/services.php holds these functions; cli/setup.php gives the web-service role
 * exactly their capabilities.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class catalogue {

    /** @var string The shortname of the service the plugin declares (the connector's). */
    public const SERVICE_SHORTNAME = 'oec_sync';

    /** @var string The name of that service. */
    public const SERVICE_NAME = 'OpenEduCat Sync';

    /** @var string The feature of the deletion functions: contract tests only, never in the service. */
    public const CLEANUP = 'cleanup';

    /**
     * The connector's Moodle functions: name => [feature, older name or '', capabilities checked].
     *
     * The capabilities are those the function checks for the calls the connector makes, as
     * found on Moodle 4.5 (webservice/rest:use, the protocol's, is added by the set-up).
     */
    public const CORE_FUNCTIONS = [
        'core_webservice_get_site_info' => ['connection', '', []],
        'core_course_get_categories' => ['categories', '', [
            'moodle/category:viewcourselist', 'moodle/category:viewhiddencategories',
            'moodle/category:manage',
        ]],
        'core_course_create_categories' => ['categories', '', ['moodle/category:manage']],
        'core_course_update_categories' => ['categories', '', ['moodle/category:manage']],
        'core_course_get_courses_by_field' => ['courses', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:update',
        ]],
        'core_course_create_courses' => ['courses', '', ['moodle/course:create']],
        'core_course_update_courses' => ['courses', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:update',
            'moodle/course:changefullname', 'moodle/course:changeshortname', 'moodle/course:changesummary',
            'moodle/course:changecategory',
        ]],
        'core_user_get_users_by_field' => ['users', '', [
            'moodle/user:viewdetails', 'moodle/user:viewalldetails', 'moodle/user:viewhiddendetails',
            'moodle/site:viewuseridentity', 'moodle/site:viewfullnames',
        ]],
        'core_user_create_users' => ['users', '', ['moodle/user:create']],
        'core_user_update_users' => ['users', '', ['moodle/user:update']],
        'core_group_get_course_groups' => ['groups', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_group_create_groups' => ['groups', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_group_update_groups' => ['groups', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_group_get_group_members' => ['groups', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_group_add_group_members' => ['groups', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_group_delete_group_members' => ['groups', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_enrol_get_enrolled_users' => ['enrolments', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:viewparticipants',
            'moodle/user:viewdetails', 'moodle/site:accessallgroups',
        ]],
        'enrol_manual_enrol_users' => ['enrolments', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'enrol/manual:enrol',
            'moodle/role:assign',
        ]],
        'enrol_manual_unenrol_users' => ['enrolments', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'enrol/manual:unenrol',
        ]],
        'gradereport_user_get_grade_items' => ['gradebook', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'gradereport/user:view',
            'moodle/grade:viewall', 'moodle/site:accessallgroups',
        ]],
        'mod_assign_get_assignments' => ['assignments', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/assign:view',
            'moodle/course:ignoreavailabilityrestrictions',
        ]],
        'mod_assign_get_grades' => ['assignments', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/assign:view',
            'mod/assign:viewgrades', 'moodle/course:ignoreavailabilityrestrictions',
            'moodle/site:accessallgroups',
        ]],
        'mod_quiz_get_quizzes_by_courses' => ['quizzes', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/quiz:view',
            'moodle/course:ignoreavailabilityrestrictions',
        ]],
        'mod_quiz_get_user_best_grade' => ['quizzes', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/quiz:view', 'mod/quiz:viewreports',
            'moodle/course:ignoreavailabilityrestrictions',
        ]],
        'core_completion_get_course_completion_status' => ['completion', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'report/completion:view',
            'moodle/site:accessallgroups',
        ]],
        'mod_attendance_get_sessions' => ['attendance', 'mod_wsattendance_get_sessions', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
            'mod/attendance:takeattendances',
        ]],
        'mod_attendance_get_session' => ['attendance', 'mod_wsattendance_get_session', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
            'mod/attendance:takeattendances',
        ]],
        'mod_attendance_update_user_status' => ['attendance', 'mod_wsattendance_update_user_status', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
            'mod/attendance:takeattendances',
        ]],
        'mod_attendance_add_attendance' => ['attendance', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:manageactivities',
            'mod/attendance:addinstance',
        ]],
        'mod_attendance_add_session' => ['attendance', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
            'mod/attendance:manageattendances',
        ]],
        'core_course_get_contents' => ['attendance', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
        ]],
        'core_course_delete_categories' => ['cleanup', '', [
            'moodle/category:manage', 'moodle/course:delete',
        ]],
        'core_course_delete_courses' => ['cleanup', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:delete',
        ]],
        'core_group_delete_groups' => ['cleanup', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:managegroups',
        ]],
        'core_user_delete_users' => ['cleanup', '', ['moodle/user:delete']],
        'core_enrol_get_users_courses' => ['users', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:viewparticipants',
            'moodle/user:viewdetails',
        ]],
        'core_enrol_get_enrolled_users_with_capability' => ['users', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'moodle/course:viewparticipants',
            'moodle/site:viewparticipants', 'moodle/role:review', 'moodle/user:viewdetails',
        ]],
        'core_user_get_users' => ['users', '', [
            'moodle/user:viewdetails', 'moodle/user:viewalldetails', 'moodle/user:viewhiddendetails',
            'moodle/site:viewuseridentity', 'moodle/site:viewfullnames',
        ]],
    ];

    /**
     * This plugin's functions, in the same form.
     */
    public const OWN_FUNCTIONS = [
        'local_openeducat_get_course_completions' => ['completion', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'report/completion:view',
            'moodle/site:accessallgroups',
        ]],
        'local_openeducat_get_attendance_logs' => ['attendance', '', [
            'moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
            'mod/attendance:takeattendances', 'moodle/course:ignoreavailabilityrestrictions',
        ]],
    ];

    /**
     * Every function, core and own.
     *
     * @return array name => [feature, older name, capabilities]
     */
    public static function all(): array {
        return self::CORE_FUNCTIONS + self::OWN_FUNCTIONS;
    }

    /**
     * The functions of the service: every function but the deletion ones, with the older
     * names of the attendance functions (a site has one or the other; a name the site lacks
     * is held by the service and ignored by Moodle).
     *
     * @param bool $withcleanup add the deletion functions (the connector's contract tests)
     * @return string[] function names
     */
    public static function service_functions(bool $withcleanup = false): array {
        $names = [];
        foreach (self::all() as $name => [$feature, $legacy]) {
            if ($feature === self::CLEANUP && !$withcleanup) {
                continue;
            }
            $names[] = $name;
            if ($legacy !== '') {
                $names[] = $legacy;
            }
        }
        return $names;
    }

    /**
     * The capabilities the given functions check, each once, webservice/rest:use first.
     *
     * @param string[] $functions function names (older names count as their function)
     * @return string[] capability names
     */
    public static function capabilities(array $functions): array {
        $byname = [];
        foreach (self::all() as $name => [$feature, $legacy, $capabilities]) {
            $byname[$name] = $capabilities;
            if ($legacy !== '') {
                $byname[$legacy] = $capabilities;
            }
        }
        $found = ['webservice/rest:use' => true];
        foreach ($functions as $name) {
            foreach ($byname[$name] ?? [] as $capability) {
                $found[$capability] = true;
            }
        }
        return array_keys($found);
    }
}
