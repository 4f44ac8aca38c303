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

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->dirroot . '/webservice/tests/helpers.php');
require_once($CFG->libdir . '/completionlib.php');
require_once($CFG->dirroot . '/completion/criteria/completion_criteria_self.php');

/**
 * Paging from the previous page's end, and reads since a time that skip the courses without changes.
 *
 * @covers \local_openeducat\external\get_course_completions
 */
final class get_course_completions_paging_test extends \externallib_advanced_testcase {

    protected function setUp(): void {
        global $CFG;
        parent::setUp();
        $this->resetAfterTest();
        $CFG->enablecompletion = 1;
        set_config('trackingsince', time() - 10000, 'local_openeducat');
        $caller = $this->getDataGenerator()->create_user();
        $roleid = $this->getDataGenerator()->create_role(['shortname' => 'oectest']);
        $system = \context_system::instance();
        foreach (['moodle/course:view', 'moodle/course:viewhiddencourses', 'report/completion:view',
                'moodle/site:accessallgroups'] as $capability) {
            assign_capability($capability, CAP_ALLOW, $roleid, $system->id);
        }
        role_assign($roleid, $caller->id, $system->id);
        accesslib_clear_all_caches_for_unit_testing();
        $this->setUser($caller);
    }

    private function course_with_criteria(int $students): \stdClass {
        $generator = $this->getDataGenerator();
        $course = $generator->create_course(['enablecompletion' => 1]);
        $data = (object) ['id' => $course->id, 'criteria_self' => 1];
        (new \completion_criteria_self())->update_config($data);
        $aggregation = new \completion_aggregation(['course' => $course->id, 'criteriatype' => null]);
        $aggregation->setMethod(COMPLETION_AGGREGATION_ALL);
        $aggregation->save();
        for ($i = 0; $i < $students; $i++) {
            $generator->create_and_enrol($course, 'student');
        }
        return $course;
    }

    private function call(array $courseids, int $since, int $page, int $perpage): array {
        $result = get_course_completions::execute($courseids, $since, $page, $perpage);
        return external_api::clean_returnvalue(get_course_completions::execute_returns(), $result);
    }

    /** Every page in turn; with $purge, each page counted again (no previous page's end). */
    private function pages(array $courseids, int $since, int $perpage, bool $purge): array {
        $rows = [];
        $page = 0;
        do {
            if ($purge) {
                \cache_helper::purge_all();
            }
            $result = $this->call($courseids, $since, $page++, $perpage);
            $rows = array_merge($rows, $result['completions']);
        } while ($result['hasmore']);
        return $rows;
    }

    public function test_pages_from_the_previous_page_end_are_the_counted_pages(): void {
        $courseids = [
            (int) $this->course_with_criteria(3)->id,
            (int) $this->getDataGenerator()->create_course()->id,
            (int) $this->course_with_criteria(1)->id,
            (int) $this->course_with_criteria(4)->id,
            (int) $this->getDataGenerator()->create_course()->id,
        ];
        $whole = $this->call($courseids, 0, 0, 100)['completions'];
        $this->assertCount(10, $whole);
        foreach ([1, 2, 3, 4, 7, 9, 10] as $perpage) {
            $this->assertSame($whole, $this->pages($courseids, 0, $perpage, false), "perpage $perpage");
            $this->assertSame($whole, $this->pages($courseids, 0, $perpage, true), "perpage $perpage, counted");
        }
    }

    public function test_a_page_end_left_by_another_read_is_not_used(): void {
        $first = $this->course_with_criteria(3);
        $second = $this->course_with_criteria(3);
        $courseids = [(int) $first->id, (int) $second->id];
        $this->call($courseids, 0, 0, 2);                  // leaves page 1 of (since 0, perpage 2)
        // Another page size, another since, other courses: counted, not taken from that read.
        $this->assertSame(array_slice($this->call($courseids, 0, 0, 100)['completions'], 3, 3),
            $this->call($courseids, 0, 1, 3)['completions']);
        $this->assertSame(array_slice($this->call([(int) $second->id], 0, 0, 100)['completions'], 2, 1),
            $this->call([(int) $second->id], 0, 1, 2)['completions']);
        // The course where the previous page ended is no longer readable: counted again.
        $this->call($courseids, 0, 0, 2);
        delete_course($first, false);
        $this->assertSame(array_slice($this->call([(int) $second->id], 0, 0, 100)['completions'], 2, 1),
            $this->call($courseids, 0, 1, 2)['completions']);
    }

    public function test_since_reads_only_the_courses_with_changes(): void {
        global $DB;
        $courses = [$this->course_with_criteria(2), $this->course_with_criteria(2), $this->course_with_criteria(2)];
        $plain = $this->getDataGenerator()->create_course();
        $courseids = array_map(fn($c) => (int) $c->id, [...$courses, $plain]);
        $since = time() - 100;
        foreach ($courses as $course) {
            foreach (['timeenrolled', 'timestarted', 'timecompleted'] as $field) {
                $DB->set_field_select('course_completions', $field, $since - 1000, "course = ? AND $field > 0",
                    [$course->id]);
            }
        }
        $this->assertSame([[(int) $plain->id, 0]],
            array_map(fn($r) => [$r['courseid'], $r['userid']], $this->call($courseids, $since, 0, 100)['completions']));
        $userid = (int) array_key_first(get_enrolled_users(\context_course::instance($courses[1]->id)));
        (new \completion_info($courses[1]))->get_completion($userid, COMPLETION_CRITERIA_TYPE_SELF)->mark_complete();
        $rows = $this->call($courseids, $since, 0, 100)['completions'];
        $this->assertSame([[(int) $courses[1]->id, (int) $userid], [(int) $plain->id, 0]],
            array_map(fn($r) => [$r['courseid'], $r['userid']], $rows));
    }
}
