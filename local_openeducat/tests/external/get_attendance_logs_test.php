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

namespace local_openeducat\external;

use core_external\external_api;
use invalid_parameter_exception;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->dirroot . '/webservice/tests/helpers.php');

/**
 * Tests of local_openeducat_get_attendance_logs (skipped where mod_attendance is not installed).
 *
 * @package    local_openeducat
 * @category   test
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_openeducat\external\get_attendance_logs
 */
final class get_attendance_logs_test extends \externallib_advanced_testcase {

    /** @var \stdClass the caller */
    private \stdClass $caller;

    /** @var int its role */
    private int $roleid;

    protected function setUp(): void {
        parent::setUp();
        if (!get_attendance_logs::attendance_installed()) {
            $this->markTestSkipped('mod_attendance is not installed');
        }
        $this->resetAfterTest();
        $this->caller = $this->getDataGenerator()->create_user();
        $this->roleid = $this->getDataGenerator()->create_role(['shortname' => 'oectest']);
        $system = \context_system::instance();
        foreach (['moodle/course:view', 'moodle/course:viewhiddencourses', 'mod/attendance:view',
                'mod/attendance:takeattendances', 'moodle/course:ignoreavailabilityrestrictions'] as $capability) {
            assign_capability($capability, CAP_ALLOW, $this->roleid, $system->id);
        }
        role_assign($this->roleid, $this->caller->id, $system->id);
        accesslib_clear_all_caches_for_unit_testing();
        $this->setUser($this->caller);
    }

    /**
     * An attendance activity with two sessions; two students marked in the first, one in the second.
     *
     * @param int $time the time of every record, session and register
     * @return array
     */
    private function register(int $time): array {
        global $DB;
        $generator = $this->getDataGenerator();
        $course = $generator->create_course();
        $students = [(int) $generator->create_and_enrol($course, 'student')->id,
            (int) $generator->create_and_enrol($course, 'student')->id];
        $attendance = $generator->create_module('attendance', ['course' => $course->id]);
        $statuses = [];
        foreach ($DB->get_records('attendance_statuses', ['attendanceid' => $attendance->id, 'deleted' => 0]) as $status) {
            $statuses[$status->acronym] = (int) $status->id;
        }
        $sessions = [];
        foreach ([0, DAYSECS] as $i => $offset) {
            $sessions[] = (int) $DB->insert_record('attendance_sessions', (object) [
                'attendanceid' => $attendance->id,
                'groupid' => 0,
                'sessdate' => $time - WEEKSECS + $offset,
                'duration' => 3600 * ($i + 1),
                'lasttaken' => $time,
                'lasttakenby' => $this->caller->id,
                'timemodified' => $time,
                'description' => '',
                'descriptionformat' => FORMAT_HTML,
            ]);
        }
        $logs = [];
        foreach ([[0, 0, 'P'], [0, 1, 'A'], [1, 0, 'L']] as [$session, $student, $acronym]) {
            $logs[] = (int) $DB->insert_record('attendance_log', (object) [
                'sessionid' => $sessions[$session],
                'studentid' => $students[$student],
                'statusid' => $statuses[$acronym],
                'statusset' => implode(',', $statuses),
                'timetaken' => $time,
                'takenby' => $this->caller->id,
                'remarks' => $acronym === 'A' ? 'ill' : null,
            ]);
        }
        return [
            'course' => $course,
            'attendance' => $attendance,
            'students' => $students,
            'sessions' => $sessions,
            'statuses' => $statuses,
            'logs' => $logs,
        ];
    }

    /**
     * Call the function as the web service would and clean its answer.
     *
     * @param array $args execute()'s arguments by name
     * @return array
     */
    private function call(array $args): array {
        $args += ['attendanceids' => [], 'courseids' => [], 'since' => 0, 'page' => 0, 'perpage' => 1000];
        $result = get_attendance_logs::execute($args['attendanceids'], $args['courseids'], $args['since'],
            $args['page'], $args['perpage']);
        return external_api::clean_returnvalue(get_attendance_logs::execute_returns(), $result);
    }

    public function test_records_of_an_activity(): void {
        $time = time() - 1000;
        $register = $this->register($time);

        $result = $this->call(['attendanceids' => [$register['attendance']->id]]);

        $this->assertSame([], $result['warnings']);
        $this->assertFalse($result['hasmore']);
        $this->assertSame($register['logs'], array_column($result['logs'], 'id'));
        $first = $result['logs'][0];
        $this->assertSame([
            'id' => $register['logs'][0],
            'courseid' => (int) $register['course']->id,
            'attendanceid' => (int) $register['attendance']->id,
            'sessionid' => $register['sessions'][0],
            'groupid' => 0,
            'sessdate' => $time - WEEKSECS,
            'duration' => 3600,
            'lasttaken' => $time,
            'studentid' => $register['students'][0],
            'statusid' => $register['statuses']['P'],
            'statusacronym' => 'P',
            'timetaken' => $time,
            'takenby' => (int) $this->caller->id,
            'remarks' => null,
        ], $first);
        $this->assertSame('ill', $result['logs'][1]['remarks']);
        $this->assertSame('L', $result['logs'][2]['statusacronym']);
    }

    public function test_agrees_with_mod_attendance(): void {
        global $CFG;
        require_once($CFG->dirroot . '/mod/attendance/classes/attendance_webservices_handler.php');
        $this->setAdminUser();
        $register = $this->register(time());
        $ours = [];
        foreach ($this->call(['attendanceids' => [$register['attendance']->id]])['logs'] as $log) {
            $ours[] = [$log['sessionid'], $log['studentid'], $log['statusid']];
        }

        $theirs = [];
        foreach ($register['sessions'] as $sessionid) {
            // What mod_attendance_get_session returns.
            $session = \attendance_handler::get_session($sessionid);
            foreach ($session->attendance_log as $log) {
                $log = (array) $log;
                $theirs[] = [$sessionid, (int) $log['studentid'], (int) $log['statusid']];
            }
        }
        sort($ours);
        sort($theirs);
        $this->assertSame($theirs, $ours);
    }

    public function test_by_course(): void {
        $register = $this->register(time());
        $empty = $this->getDataGenerator()->create_course();

        $bycourse = $this->call(['courseids' => [$register['course']->id, $empty->id]]);
        $byactivity = $this->call(['attendanceids' => [$register['attendance']->id]]);

        $this->assertSame($byactivity['logs'], $bycourse['logs']);
    }

    public function test_since(): void {
        global $DB;
        $since = time() - 100;
        $register = $this->register($since - 1000);
        $id = $register['attendance']->id;
        $this->assertSame([], $this->call(['attendanceids' => [$id], 'since' => $since])['logs']);

        // One record written again.
        $DB->set_field('attendance_log', 'timetaken', $since, ['id' => $register['logs'][2]]);
        $this->assertSame([$register['logs'][2]],
            array_column($this->call(['attendanceids' => [$id], 'since' => $since])['logs'], 'id'));

        // A session's register taken again, or the session edited: its records.
        $DB->set_field('attendance_log', 'timetaken', $since - 1000, ['id' => $register['logs'][2]]);
        foreach (['lasttaken', 'timemodified'] as $field) {
            $DB->set_field('attendance_sessions', $field, $since + 1, ['id' => $register['sessions'][0]]);
            $this->assertSame(array_slice($register['logs'], 0, 2),
                array_column($this->call(['attendanceids' => [$id], 'since' => $since])['logs'], 'id'), $field);
            $DB->set_field('attendance_sessions', $field, $since - 1000, ['id' => $register['sessions'][0]]);
        }
    }

    public function test_pages(): void {
        $register = $this->register(time());
        $pages = [];
        for ($page = 0; $page < 3; $page++) {
            $pages[] = $this->call(['attendanceids' => [$register['attendance']->id], 'page' => $page, 'perpage' => 2]);
        }

        $this->assertSame(array_slice($register['logs'], 0, 2), array_column($pages[0]['logs'], 'id'));
        $this->assertSame([$register['logs'][2]], array_column($pages[1]['logs'], 'id'));
        $this->assertSame([], $pages[2]['logs']);
        $this->assertSame([true, false, false], array_column($pages, 'hasmore'));
    }

    public function test_unknown_ids_are_warnings(): void {
        $register = $this->register(time());

        $result = $this->call(['attendanceids' => [$register['attendance']->id, 987654], 'courseids' => [876543]]);

        $this->assertCount(3, $result['logs']);
        $warnings = array_map(fn($w) => [$w['item'], $w['itemid'], $w['warningcode']], $result['warnings']);
        $this->assertSame([['attendance', 987654, 'invalidattendanceid'], ['course', 876543, 'invalidcourseid']], $warnings);
    }

    public function test_permissions(): void {
        $allowed = $this->register(time());
        $denied = $this->register(time());
        $hidden = $this->register(time());
        $deniedcontext = \context_module::instance($denied['attendance']->cmid);
        assign_capability('mod/attendance:takeattendances', CAP_PROHIBIT, $this->roleid, $deniedcontext->id);
        set_coursemodule_visible($hidden['attendance']->cmid, 0);
        accesslib_clear_all_caches_for_unit_testing();

        $result = $this->call(['attendanceids' => [$allowed['attendance']->id, $denied['attendance']->id,
            $hidden['attendance']->id]]);

        $this->assertSame($allowed['logs'], array_column($result['logs'], 'id'));
        $warnings = array_column($result['warnings'], 'warningcode', 'itemid');
        $this->assertSame('nopermissions', $warnings[$denied['attendance']->id]);
        $this->assertSame('cannotaccess', $warnings[$hidden['attendance']->id]);

        // Any of manage, take or change attendances will do, as for mod_attendance_get_sessions.
        assign_capability('mod/attendance:changeattendances', CAP_ALLOW, $this->roleid, $deniedcontext->id);
        unassign_capability('mod/attendance:takeattendances', $this->roleid);
        accesslib_clear_all_caches_for_unit_testing();
        $result = $this->call(['attendanceids' => [$allowed['attendance']->id, $denied['attendance']->id]]);
        $this->assertSame($denied['logs'], array_column($result['logs'], 'id'));
    }

    public function test_bad_parameters_are_refused(): void {
        $cases = [
            [[], [], 0, 0, 10],
            [[1], [], 0, 0, 0],
            [[1], [], 0, 0, get_attendance_logs::MAX_PERPAGE + 1],
            [[1], [], 0, -1, 10],
            [[1], [], -1, 0, 10],
        ];
        foreach ($cases as $args) {
            try {
                get_attendance_logs::execute(...$args);
                $this->fail('accepted ' . json_encode($args));
            } catch (invalid_parameter_exception $e) {
                $this->assertSame('invalidparameter', $e->errorcode);
            }
        }
    }
}
