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
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use core_external\external_warnings;
use core_external\util;
use invalid_parameter_exception;
use local_openeducat\local\paging;

/**
 * Course completion of every tracked user of many courses, changed since a time, paged.
 *
 * What core_completion_get_course_completion_status answers for one user and course, for all
 * of them in a few calls. The same checks, per course: the course context is validated
 * (require_login: moodle/course:view for a user not enrolled, moodle/course:viewhiddencourses
 * for a hidden course), report/completion:view is required, and in a course in separate
 * groups mode a caller without moodle/site:accessallgroups only sees the users who share a
 * group with them. The users listed are those core calls tracked: active enrolment, the
 * capability moodle/course:isincompletionreports (students), an active account.
 *
 * A row is "changed since T" when T is 0, when T is before the plugin started tracking
 * changes (its installation), or when any of these happened at or after T:
 * - the user's course completion: timeenrolled, timestarted, timecompleted or reaggregate
 *   (reaggregate is the server time at which a criterion was completed, until the aggregation
 *   marks the course);
 * - any of the user's criteria completions in the course (timecompleted);
 * - a change noted by the plugin's observers (server time): the course was completed for the
 *   user (course completion times can be earlier than the moment the course is marked), or
 *   something that affects every user of the course (criteria edited, course reset, an
 *   activity deleted).
 * Completion data deleted without any of these events (a user unenrolled and re-enrolled, a
 * restore) is only seen by a full read (since 0).
 *
 * Paging: a page is found by counting the rows of the courses before it, unless the previous
 * page of the same read (same caller, courses, since and page size) left where it stopped in
 * an application cache for a few minutes, which the connector's reads, page after page, always
 * find: a read of N pages then costs N pages, not N²/2 course counts. When the courses allowed
 * changed in between, or the cache was purged, the page is counted again.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_course_completions extends external_api {

    /** @var int Most rows per page. */
    public const MAX_PERPAGE = 5000;

    /** @var int Rows per page when not given. */
    public const DEFAULT_PERPAGE = 1000;

    /** @var int Most courses per call. */
    public const MAX_COURSES = 1000;

    /** @var int Seconds a page's end is kept for the next page. */
    public const CURSOR_TTL = 900;

    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courseids' => new external_multiple_structure(
                new external_value(PARAM_INT, 'Course id'),
                'The courses (at most ' . self::MAX_COURSES . '; none: nothing listed)', VALUE_DEFAULT, []
            ),
            'since' => new external_value(PARAM_INT,
                'Only the rows changed at or after this server time (unix time); 0 for all', VALUE_DEFAULT, 0),
            'page' => new external_value(PARAM_INT, 'Page number, from 0', VALUE_DEFAULT, 0),
            'perpage' => new external_value(PARAM_INT,
                'Rows per page, 1 to ' . self::MAX_PERPAGE, VALUE_DEFAULT, self::DEFAULT_PERPAGE),
        ]);
    }

    /**
     * List the course completions.
     *
     * Rows are ordered by course id, then user id; a course without completion criteria (or
     * with completion tracking off) is one row, user 0, hascriteria false, whatever "since".
     * Ask page 0, 1, ... while hasmore is true, and use page 0's timenow as the next call's
     * since.
     *
     * @param int[] $courseids
     * @param int $since
     * @param int $page
     * @param int $perpage
     * @return array
     */
    public static function execute(array $courseids = [], int $since = 0, int $page = 0,
            int $perpage = self::DEFAULT_PERPAGE): array {
        global $CFG, $DB;
        require_once($CFG->libdir . '/completionlib.php');
        require_once($CFG->libdir . '/grouplib.php');

        $params = self::validate_parameters(self::execute_parameters(), [
            'courseids' => $courseids,
            'since' => $since,
            'page' => $page,
            'perpage' => $perpage,
        ]);
        $since = $params['since'];
        $page = $params['page'];
        $perpage = $params['perpage'];
        $courseids = array_values(array_unique(array_map('intval', $params['courseids'])));
        sort($courseids);
        if (count($courseids) > self::MAX_COURSES) {
            throw new invalid_parameter_exception('At most ' . self::MAX_COURSES . ' courses per call');
        }
        paging::check($since, $page, $perpage, self::MAX_PERPAGE);

        $timenow = time();
        $trackingsince = (int) get_config('local_openeducat', 'trackingsince');
        $allrows = $since == 0 || $since < $trackingsince;

        $plan = [];
        $warnings = [];
        if ($courseids) {
            [$plan, $warnings] = self::plan($courseids, $since, $allrows);
        }

        // The page: start where the previous page stopped when it is known, otherwise skip whole
        // courses by counting; then read the rows of the page, and one more to tell whether
        // another page follows (and where it starts).
        $cursors = \cache::make_from_params(\cache_store::MODE_APPLICATION, 'local_openeducat', 'completionpages',
            [], ['simplekeys' => true, 'simpledata' => true]);
        $offset = $page * $perpage;
        $start = 0;
        $cursor = $page > 0 ? $cursors->get(self::cursor_key($courseids, $since, $page, $perpage)) : false;
        if ($cursor && $cursor['time'] >= $timenow - self::CURSOR_TTL) {
            foreach ($plan as $index => [$courseid]) {
                if ($courseid == $cursor['courseid']) {
                    [$start, $offset] = [$index, $cursor['offset']];
                    break;
                }
            }
        }
        $want = $perpage + 1;
        $rows = [];
        $next = null;
        foreach (array_slice($plan, $start) as [$courseid, $query]) {
            if (count($rows) >= $want) {
                break;
            }
            if ($query === null) {
                if ($offset > 0) {
                    $offset--;
                } else {
                    $next = [$courseid, 0];
                    $rows[] = [
                        'courseid' => $courseid,
                        'userid' => 0,
                        'hascriteria' => false,
                        'completed' => false,
                        'timecompleted' => null,
                    ];
                }
                continue;
            }
            [$sql, $sqlparams] = $query;
            if ($offset > 0) {
                $count = $DB->count_records_sql("SELECT COUNT(1) FROM ($sql) x", $sqlparams);
                if ($count <= $offset) {
                    $offset -= $count;
                    continue;
                }
            }
            $records = $DB->get_recordset_sql("$sql ORDER BY u.id", $sqlparams, $offset, $want - count($rows));
            foreach ($records as $record) {
                $next = [$courseid, $offset++];
                $rows[] = [
                    'courseid' => $courseid,
                    'userid' => (int) $record->userid,
                    'hascriteria' => true,
                    'completed' => !empty($record->timecompleted),
                    'timecompleted' => empty($record->timecompleted) ? null : (int) $record->timecompleted,
                ];
            }
            $records->close();
            $offset = 0;
        }
        if (count($rows) > $perpage) {
            // The extra row is the next page's first.
            $cursors->set(self::cursor_key($courseids, $since, $page + 1, $perpage),
                ['courseid' => $next[0], 'offset' => $next[1], 'time' => $timenow]);
        }

        return [
            'completions' => array_slice($rows, 0, $perpage),
            'page' => $page,
            'perpage' => $perpage,
            'hasmore' => count($rows) > $perpage,
            'timenow' => $timenow,
            'allrows' => $allrows,
            'warnings' => $warnings,
        ];
    }

    /**
     * Check each course, and build the query of its rows.
     *
     * @param int[] $courseids sorted
     * @param int $since
     * @param bool $allrows
     * @return array [[courseid, null (no criteria) or [sql, params]], ...], warnings
     */
    private static function plan(array $courseids, int $since, bool $allrows): array {
        global $DB, $USER;

        // Moodle's check for functions over many courses: the course exists and its context
        // validates (require_login); the others are warnings.
        [$courses, $warnings] = util::validate_courses($courseids, [], true);

        [$insql, $inparams] = $DB->get_in_or_equal($courseids ?: [0]);
        $withcriteria = array_flip($DB->get_fieldset_sql(
            "SELECT DISTINCT course FROM {course_completion_criteria} WHERE course $insql", $inparams));
        $wholecourse = [];
        $changed = [];
        if (!$allrows) {
            $wholecourse = array_flip($DB->get_fieldset_sql(
                "SELECT DISTINCT courseid FROM {local_openeducat_compl}
                  WHERE userid = 0 AND timechanged >= ? AND courseid $insql", array_merge([$since], $inparams)));
            $changed = self::changed_courses($insql, $inparams, $since);
        }
        $siteenabled = \completion_info::is_enabled_for_site();

        $plan = [];
        foreach ($courseids as $courseid) {
            if (!isset($courses[$courseid])) {
                continue;
            }
            if ($courseid == SITEID) {
                $warnings[] = self::warning($courseid, 'sitecourse', 'The site home page is not a course');
                continue;
            }
            $course = $courses[$courseid];
            $context = $course->context;
            // As completion_can_view_data() for another user in a course.
            if (!has_capability('report/completion:view', $context)) {
                $warnings[] = self::warning($courseid, 'nopermissions',
                    get_string('nopermissions', 'error', get_capability_string('report/completion:view')));
                continue;
            }
            if (!$siteenabled || $course->enablecompletion != COMPLETION_ENABLED || !isset($withcriteria[$courseid])) {
                $plan[] = [$courseid, null];
                continue;
            }
            // As groups_user_groups_visible(): in separate groups, without accessallgroups, only
            // the users who share a group with the caller.
            $groupids = 0;
            if (groups_get_course_groupmode($course) == SEPARATEGROUPS
                    && !has_capability('moodle/site:accessallgroups', $context)) {
                $groupids = array_keys(groups_get_all_groups($courseid, $USER->id));
                if (!$groupids) {
                    $warnings[] = self::warning($courseid, 'nogroupaccess',
                        'Separate groups: the caller is in no group of this course');
                    continue;
                }
            }
            $whole = $allrows || isset($wholecourse[$courseid]);
            if (!$whole && !isset($changed[$courseid])) {
                // Nothing of the course changed since then: none of its users would be listed.
                continue;
            }
            $plan[] = [$courseid, self::users_sql($context, $courseid, $groupids, $whole ? 0 : $since)];
        }
        return [$plan, $warnings];
    }

    /**
     * The courses where any of the changes users_sql() looks for happened at or after a time, in
     * three queries over all the courses (each by its course index) instead of one per course.
     *
     * @param string $insql "IN (...)" of the course ids
     * @param array $inparams its parameters
     * @param int $since
     * @return array course id => index
     */
    private static function changed_courses(string $insql, array $inparams, int $since): array {
        global $DB;
        $changed = $DB->get_fieldset_sql(
            "SELECT DISTINCT course FROM {course_completions}
              WHERE course $insql AND (timecompleted >= ? OR timeenrolled >= ? OR timestarted >= ? OR reaggregate >= ?)",
            array_merge($inparams, [$since, $since, $since, $since]));
        $changed = array_merge($changed, $DB->get_fieldset_sql(
            "SELECT DISTINCT course FROM {course_completion_crit_compl} WHERE course $insql AND timecompleted >= ?",
            array_merge($inparams, [$since])));
        $changed = array_merge($changed, $DB->get_fieldset_sql(
            "SELECT DISTINCT courseid FROM {local_openeducat_compl} WHERE courseid $insql AND timechanged >= ?",
            array_merge($inparams, [$since])));
        return array_flip(array_map('intval', $changed));
    }

    /**
     * The query of a course's tracked users and their completion, changed since a time.
     *
     * @param \context_course $context
     * @param int $courseid
     * @param int|int[] $groupids 0: every user
     * @param int $since 0: every user
     * @return array sql (without ORDER BY), params
     */
    private static function users_sql(\context_course $context, int $courseid, $groupids, int $since): array {
        [$enrolledsql, $params] = get_enrolled_sql($context, 'moodle/course:isincompletionreports', $groupids, true);
        $sql = "SELECT u.id AS userid, cc.timecompleted
                  FROM {user} u
                  JOIN ($enrolledsql) eu ON eu.id = u.id
             LEFT JOIN {course_completions} cc ON cc.course = :loecourse1 AND cc.userid = u.id
                 WHERE u.deleted = 0 AND u.suspended = 0";
        $params['loecourse1'] = $courseid;
        if ($since > 0) {
            $sql .= " AND (cc.timecompleted >= :loesince1 OR cc.timeenrolled >= :loesince2
                           OR cc.timestarted >= :loesince3 OR cc.reaggregate >= :loesince4
                           OR EXISTS (SELECT 1
                                        FROM {course_completion_crit_compl} ccc
                                       WHERE ccc.course = :loecourse2 AND ccc.userid = u.id
                                             AND ccc.timecompleted >= :loesince5)
                           OR EXISTS (SELECT 1
                                        FROM {local_openeducat_compl} loc
                                       WHERE loc.courseid = :loecourse3 AND loc.userid = u.id
                                             AND loc.timechanged >= :loesince6))";
            $params += [
                'loecourse2' => $courseid,
                'loecourse3' => $courseid,
                'loesince1' => $since,
                'loesince2' => $since,
                'loesince3' => $since,
                'loesince4' => $since,
                'loesince5' => $since,
                'loesince6' => $since,
            ];
        }
        return [$sql, $params];
    }

    /**
     * The cache key of where a page starts: the caller, the courses, since, page and page size.
     *
     * @param int[] $courseids sorted
     * @param int $since
     * @param int $page
     * @param int $perpage
     * @return string
     */
    private static function cursor_key(array $courseids, int $since, int $page, int $perpage): string {
        global $USER;
        return sha1(implode(',', [$USER->id, $since, $page, $perpage]) . ':' . implode(',', $courseids));
    }

    /**
     * A warning about a course.
     *
     * @param int $courseid
     * @param string $code
     * @param string $message
     * @return array
     */
    private static function warning(int $courseid, string $code, string $message): array {
        return ['item' => 'course', 'itemid' => $courseid, 'warningcode' => $code, 'message' => $message];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'completions' => new external_multiple_structure(new external_single_structure([
                'courseid' => new external_value(PARAM_INT, 'Course id'),
                'userid' => new external_value(PARAM_INT, 'User id; 0 for a course without criteria'),
                'hascriteria' => new external_value(PARAM_BOOL,
                    'The course has completion criteria and completion tracking is on'),
                'completed' => new external_value(PARAM_BOOL, 'The user completed the course'),
                'timecompleted' => new external_value(PARAM_INT, 'When the course was completed, null if not',
                    VALUE_REQUIRED, null, NULL_ALLOWED),
            ])),
            'page' => new external_value(PARAM_INT, 'This page'),
            'perpage' => new external_value(PARAM_INT, 'Rows per page'),
            'hasmore' => new external_value(PARAM_BOOL, 'Another page follows'),
            'timenow' => new external_value(PARAM_INT, 'Server time when the call started: page 0\'s is the next since'),
            'allrows' => new external_value(PARAM_BOOL,
                'Every tracked user is listed (since 0 or before the plugin tracked changes)'),
            'warnings' => new external_warnings(),
        ]);
    }
}
