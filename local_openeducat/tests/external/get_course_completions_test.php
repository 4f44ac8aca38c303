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
use local_openeducat\observer;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->dirroot . '/webservice/tests/helpers.php');
require_once($CFG->libdir . '/completionlib.php');
require_once($CFG->dirroot . '/completion/criteria/completion_criteria_self.php');

/**
 * Tests of local_openeducat_get_course_completions.
 *
 * @package    local_openeducat
 * @category   test
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_openeducat\external\get_course_completions
 * @covers     \local_openeducat\observer
 */
final class get_course_completions_test extends \externallib_advanced_testcase {

    /** @var \stdClass the caller: a web-service user with the connector's capabilities at system level */
    private \stdClass $caller;

    /** @var int its role */
    private int $roleid;

    protected function setUp(): void {
        global $CFG;
        parent::setUp();
        $this->resetAfterTest();
        $CFG->enablecompletion = 1;
        set_config('trackingsince', time() - 10000, 'local_openeducat');

        $this->caller = $this->getDataGenerator()->create_user();
        $this->roleid = $this->getDataGenerator()->create_role(['shortname' => 'oectest']);
        $system = \context_system::instance();
        foreach (['moodle/course:view', 'moodle/course:viewhiddencourses', 'report/completion:view',
                'moodle/site:accessallgroups'] as $capability) {
            assign_capability($capability, CAP_ALLOW, $this->roleid, $system->id);
        }
        role_assign($this->roleid, $this->caller->id, $system->id);
        accesslib_clear_all_caches_for_unit_testing();
        $this->setUser($this->caller);
    }

    /**
     * A course with completion on and one self-completion criterion, and its students.
     *
     * @param int $students
     * @param array $record course fields
     * @return array course, student ids (sorted)
     */
    private function course_with_criteria(int $students = 2, array $record = []): array {
        $generator = $this->getDataGenerator();
        $course = $generator->create_course(['enablecompletion' => 1] + $record);
        $data = (object) ['id' => $course->id, 'criteria_self' => 1];
        (new \completion_criteria_self())->update_config($data);
        $aggregation = new \completion_aggregation(['course' => $course->id, 'criteriatype' => null]);
        $aggregation->setMethod(COMPLETION_AGGREGATION_ALL);
        $aggregation->save();
        $ids = [];
        for ($i = 0; $i < $students; $i++) {
            $ids[] = (int) $generator->create_and_enrol($course, 'student')->id;
        }
        sort($ids);
        return [$course, $ids];
    }

    /**
     * Complete the self-completion criterion of a user and aggregate the course at once.
     *
     * @param \stdClass $course
     * @param int $userid
     * @param int|null $time
     * @param bool $aggregate
     */
    private function complete(\stdClass $course, int $userid, ?int $time = null, bool $aggregate = true): void {
        global $DB;
        $info = new \completion_info($course);
        $info->get_completion($userid, COMPLETION_CRITERIA_TYPE_SELF)->mark_complete($time ?? time());
        if ($aggregate) {
            aggregate_completions((int) $DB->get_field('course_completions', 'id',
                ['course' => $course->id, 'userid' => $userid]));
        }
    }

    /**
     * Call the function as the web service would and clean its answer.
     *
     * @param array $courseids
     * @param int $since
     * @param int $page
     * @param int $perpage
     * @return array
     */
    private function call(array $courseids, int $since = 0, int $page = 0, int $perpage = 1000): array {
        $result = get_course_completions::execute($courseids, $since, $page, $perpage);
        return external_api::clean_returnvalue(get_course_completions::execute_returns(), $result);
    }

    /**
     * Move every completion time of a course back, so that nothing counts as changed since $since.
     *
     * @param int $courseid
     * @param int $time
     */
    private function age(int $courseid, int $time): void {
        global $DB;
        foreach (['timeenrolled', 'timestarted', 'timecompleted'] as $field) {
            $DB->set_field_select('course_completions', $field, $time, "course = ? AND $field > 0", [$courseid]);
        }
        $DB->set_field('course_completions', 'reaggregate', 0, ['course' => $courseid]);
        $DB->set_field_select('course_completion_crit_compl', 'timecompleted', $time,
            'course = ? AND timecompleted > 0', [$courseid]);
        $DB->set_field(observer::TABLE, 'timechanged', $time, ['courseid' => $courseid]);
    }

    public function test_course_without_criteria_is_one_row(): void {
        $generator = $this->getDataGenerator();
        $plain = $generator->create_course(['enablecompletion' => 1]);
        $off = $generator->create_course(['enablecompletion' => 0]);
        $generator->create_and_enrol($plain, 'student');

        $result = $this->call([$off->id, $plain->id], time() + 100);

        $expected = [];
        foreach ([$plain->id, $off->id] as $courseid) {
            $expected[] = ['courseid' => (int) $courseid, 'userid' => 0, 'hascriteria' => false,
                'completed' => false, 'timecompleted' => null];
        }
        usort($expected, fn($a, $b) => $a['courseid'] <=> $b['courseid']);
        $this->assertSame($expected, $result['completions']);
        $this->assertFalse($result['hasmore']);
        $this->assertSame([], $result['warnings']);
    }

    public function test_lists_tracked_users_as_core_does(): void {
        [$course, [$done, $todo]] = $this->course_with_criteria();
        $teacher = $this->getDataGenerator()->create_and_enrol($course, 'editingteacher');
        $suspended = $this->getDataGenerator()->create_and_enrol($course, 'student', null, 'manual', 0, 0,
            ENROL_USER_SUSPENDED);
        $when = time() - 3600;
        $this->complete($course, $done, $when);

        $result = $this->call([$course->id]);

        $rows = array_column($result['completions'], null, 'userid');
        $this->assertSame([$done, $todo], array_keys($rows));
        $this->assertArrayNotHasKey($teacher->id, $rows);
        $this->assertArrayNotHasKey($suspended->id, $rows);
        $this->assertTrue($rows[$done]['completed']);
        $this->assertSame($when, $rows[$done]['timecompleted']);
        $this->assertFalse($rows[$todo]['completed']);
        $this->assertNull($rows[$todo]['timecompleted']);
        $this->assertTrue($result['allrows']);
        foreach ([$done, $todo] as $userid) {
            $core = \core_completion_external::get_course_completion_status($course->id, $userid);
            $this->assertSame($core['completionstatus']['completed'], $rows[$userid]['completed']);
        }
    }

    public function test_since_lists_what_changed(): void {
        [$course, [$first, $second]] = $this->course_with_criteria();
        $this->complete($course, $first);
        $since = time() - 100;
        $this->age($course->id, $since - 1000);

        $this->assertSame([], $this->call([$course->id], $since)['completions']);

        // Completed now, dated before "since" (as a date or duration criterion is): the observer's note shows it.
        $this->complete($course, $second, $since - 500);
        $rows = $this->call([$course->id], $since)['completions'];
        $this->assertSame([$second], array_column($rows, 'userid'));
        $this->assertTrue($rows[0]['completed']);
        $this->assertSame($since - 500, $rows[0]['timecompleted']);
        $this->assertFalse($this->call([$course->id], $since)['allrows']);
    }

    public function test_since_sees_each_kind_of_change(): void {
        global $DB;
        [$course, [$user]] = $this->course_with_criteria(1);
        $this->complete($course, $user, null, false);
        $since = time() - 100;

        // A criterion completed, the course not yet aggregated: reaggregate.
        $this->age($course->id, $since - 1000);
        $DB->set_field('course_completions', 'reaggregate', $since + 1, ['course' => $course->id]);
        $this->assertCount(1, $this->call([$course->id], $since)['completions']);

        // A criterion completion.
        $this->age($course->id, $since - 1000);
        $DB->set_field('course_completion_crit_compl', 'timecompleted', $since, ['course' => $course->id]);
        $this->assertCount(1, $this->call([$course->id], $since)['completions']);

        // The course completion's own times.
        foreach (['timeenrolled', 'timestarted', 'timecompleted'] as $field) {
            $this->age($course->id, $since - 1000);
            $DB->set_field('course_completions', $field, $since + 5, ['course' => $course->id]);
            $this->assertCount(1, $this->call([$course->id], $since)['completions'], $field);
        }

        // A change to the whole course (criteria edited): every user.
        $this->age($course->id, $since - 1000);
        $this->assertCount(0, $this->call([$course->id], $since)['completions']);
        \core\event\course_completion_updated::create([
            'courseid' => $course->id,
            'context' => \context_course::instance($course->id),
        ])->trigger();
        $this->assertCount(1, $this->call([$course->id], $since)['completions']);

        // Since earlier than the plugin's tracking: everything.
        $this->age($course->id, $since - 1000);
        set_config('trackingsince', $since + 10, 'local_openeducat');
        $result = $this->call([$course->id], $since);
        $this->assertCount(1, $result['completions']);
        $this->assertTrue($result['allrows']);
    }

    public function test_pages(): void {
        [$one, $students] = $this->course_with_criteria(3);
        $plain = $this->getDataGenerator()->create_course();
        $courseids = [$plain->id, $one->id];
        $whole = $this->call($courseids)['completions'];

        $rows = [];
        $hasmore = [];
        for ($page = 0; $page < 3; $page++) {
            $result = $this->call($courseids, 0, $page, 2);
            $rows = array_merge($rows, $result['completions']);
            $hasmore[] = $result['hasmore'];
        }

        $this->assertCount(4, $whole);
        $this->assertSame($whole, $rows);
        $this->assertSame([true, false, false], $hasmore);
        $keys = array_map(fn($r) => [$r['courseid'], $r['userid']], $whole);
        $expected = $one->id < $plain->id
            ? array_merge(array_map(fn($u) => [(int) $one->id, $u], $students), [[(int) $plain->id, 0]])
            : array_merge([[(int) $plain->id, 0]], array_map(fn($u) => [(int) $one->id, $u], $students));
        $this->assertSame($expected, $keys);
    }

    public function test_course_without_permission_is_a_warning(): void {
        [$allowed] = $this->course_with_criteria(1);
        [$denied] = $this->course_with_criteria(1);
        assign_capability('report/completion:view', CAP_PROHIBIT, $this->roleid,
            \context_course::instance($denied->id)->id);
        accesslib_clear_all_caches_for_unit_testing();

        $result = $this->call([$allowed->id, $denied->id, 987654]);

        $this->assertSame([(int) $allowed->id], array_unique(array_column($result['completions'], 'courseid')));
        $warnings = array_column($result['warnings'], 'warningcode', 'itemid');
        $this->assertSame('nopermissions', $warnings[$denied->id]);
        $this->assertSame('1', $warnings[987654]);
    }

    public function test_course_needs_course_view(): void {
        [$course] = $this->course_with_criteria(1);
        unassign_capability('moodle/course:view', $this->roleid);
        accesslib_clear_all_caches_for_unit_testing();

        $result = $this->call([$course->id]);

        $this->assertSame([], $result['completions']);
        $this->assertSame('1', $result['warnings'][0]['warningcode']);
    }

    public function test_separate_groups_without_accessallgroups(): void {
        [$course, [$mine, $theirs]] = $this->course_with_criteria(2,
            ['groupmode' => SEPARATEGROUPS, 'groupmodeforce' => 1]);
        $generator = $this->getDataGenerator();
        unassign_capability('moodle/site:accessallgroups', $this->roleid);
        $generator->enrol_user($this->caller->id, $course->id, 'teacher');
        accesslib_clear_all_caches_for_unit_testing();
        $group = $generator->create_group(['courseid' => $course->id]);
        $other = $generator->create_group(['courseid' => $course->id]);
        $generator->create_group_member(['groupid' => $group->id, 'userid' => $mine]);
        $generator->create_group_member(['groupid' => $other->id, 'userid' => $theirs]);

        $nogroup = $this->call([$course->id]);
        $generator->create_group_member(['groupid' => $group->id, 'userid' => $this->caller->id]);
        $ingroup = $this->call([$course->id]);

        $this->assertSame('nogroupaccess', $nogroup['warnings'][0]['warningcode']);
        $this->assertSame([], $nogroup['completions']);
        $this->assertSame([$mine], array_column($ingroup['completions'], 'userid'));
    }

    public function test_bad_paging_is_refused(): void {
        foreach ([[0, 0, 0], [0, 0, get_course_completions::MAX_PERPAGE + 1], [0, -1, 10], [-1, 0, 10]] as $args) {
            [$since, $page, $perpage] = $args;
            try {
                get_course_completions::execute([SITEID], $since, $page, $perpage);
                $this->fail('accepted ' . json_encode($args));
            } catch (invalid_parameter_exception $e) {
                $this->assertSame('invalidparameter', $e->errorcode);
            }
        }
    }

    public function test_observer_notes_and_forgets(): void {
        global $DB;
        [$course, [$user]] = $this->course_with_criteria(1);

        $this->complete($course, $user);
        $this->assertTrue($DB->record_exists(observer::TABLE, ['courseid' => $course->id, 'userid' => $user]));
        observer::note((int) $course->id, $user);
        $this->assertSame(1, $DB->count_records(observer::TABLE, ['courseid' => $course->id, 'userid' => $user]));

        delete_user($DB->get_record('user', ['id' => $user]));
        $this->assertFalse($DB->record_exists(observer::TABLE, ['userid' => $user]));
        observer::note((int) $course->id, 0);
        delete_course($course, false);
        $this->assertFalse($DB->record_exists(observer::TABLE, ['courseid' => $course->id]));
    }
}
