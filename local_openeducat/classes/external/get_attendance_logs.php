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
use invalid_parameter_exception;
use local_openeducat\local\paging;
use moodle_exception;

/**
 * Attendance records (mod_attendance) of many activities or courses, taken or changed since a time.
 *
 * What mod_attendance_get_sessions answers per activity (its attendance_log rows), for many
 * activities in a few calls, with each row's session. The same checks, per activity: its
 * context is validated (require_login: moodle/course:view for a user not enrolled, the
 * activity visible to the caller) and one of mod/attendance:manageattendances,
 * takeattendances or changeattendances is required; an activity that fails is a warning,
 * the others are listed.
 *
 * A row is "changed since T" when T is 0 or when, at or after T, the record was written
 * (timetaken: every writer in mod_attendance sets it to the current time: a teacher's
 * register, mod_attendance_update_user_status, a student's self-marking, automatic marking,
 * an import), the session's register was taken again (lasttaken; its records are listed
 * again even when unchanged) or the session was edited (timemodified: date, duration,
 * description). Records deleted (a session deleted, a course reset, a temporary user merged)
 * are not reported: compare the sessions listed by mod_attendance_get_sessions.
 *
 * When mod_attendance is not installed the function fails with errorcode
 * "attendancenotinstalled".
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_attendance_logs extends external_api {

    /** @var int Most rows per page. */
    public const MAX_PERPAGE = 5000;

    /** @var int Rows per page when not given. */
    public const DEFAULT_PERPAGE = 1000;

    /** @var int Most activities, and most courses, per call. */
    public const MAX_IDS = 1000;

    /** @var string[] Any of these lets the caller read an activity's records (as mod_attendance_get_sessions). */
    public const CAPABILITIES = [
        'mod/attendance:manageattendances',
        'mod/attendance:takeattendances',
        'mod/attendance:changeattendances',
    ];

    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'attendanceids' => new external_multiple_structure(
                new external_value(PARAM_INT, 'Attendance id (the instance, not the course module)'),
                'Attendance activities (at most ' . self::MAX_IDS . ')', VALUE_DEFAULT, []
            ),
            'courseids' => new external_multiple_structure(
                new external_value(PARAM_INT, 'Course id'),
                'Courses: every attendance activity in them (at most ' . self::MAX_IDS . ')', VALUE_DEFAULT, []
            ),
            'since' => new external_value(PARAM_INT,
                'Only the records taken or changed at or after this server time (unix time); 0 for all',
                VALUE_DEFAULT, 0),
            'page' => new external_value(PARAM_INT, 'Page number, from 0', VALUE_DEFAULT, 0),
            'perpage' => new external_value(PARAM_INT,
                'Rows per page, 1 to ' . self::MAX_PERPAGE, VALUE_DEFAULT, self::DEFAULT_PERPAGE),
        ]);
    }

    /**
     * List the attendance records.
     *
     * Rows are ordered by record id. Ask page 0, 1, ... while hasmore is true, and use page 0's
     * timenow as the next call's since.
     *
     * @param int[] $attendanceids
     * @param int[] $courseids
     * @param int $since
     * @param int $page
     * @param int $perpage
     * @return array
     */
    public static function execute(array $attendanceids = [], array $courseids = [], int $since = 0,
            int $page = 0, int $perpage = self::DEFAULT_PERPAGE): array {
        global $DB;

        $params = self::validate_parameters(self::execute_parameters(), [
            'attendanceids' => $attendanceids,
            'courseids' => $courseids,
            'since' => $since,
            'page' => $page,
            'perpage' => $perpage,
        ]);
        $attendanceids = array_values(array_unique(array_map('intval', $params['attendanceids'])));
        $courseids = array_values(array_unique(array_map('intval', $params['courseids'])));
        $since = $params['since'];
        $page = $params['page'];
        $perpage = $params['perpage'];
        if (!$attendanceids && !$courseids) {
            throw new invalid_parameter_exception('Give attendanceids or courseids');
        }
        if (count($attendanceids) > self::MAX_IDS || count($courseids) > self::MAX_IDS) {
            throw new invalid_parameter_exception('At most ' . self::MAX_IDS . ' attendanceids and courseids per call');
        }
        paging::check($since, $page, $perpage, self::MAX_PERPAGE);
        if (!self::attendance_installed()) {
            throw new moodle_exception('attendancenotinstalled', 'local_openeducat');
        }

        $timenow = time();
        [$allowed, $warnings] = self::allowed_instances($attendanceids, $courseids);

        $logs = [];
        $hasmore = false;
        if ($allowed) {
            [$insql, $sqlparams] = $DB->get_in_or_equal($allowed, SQL_PARAMS_NAMED, 'loeatt');
            $where = "s.attendanceid $insql";
            if ($since > 0) {
                $where .= ' AND (l.timetaken >= :loesince1 OR s.lasttaken >= :loesince2 OR s.timemodified >= :loesince3)';
                $sqlparams += ['loesince1' => $since, 'loesince2' => $since, 'loesince3' => $since];
            }
            $sql = "SELECT l.id, l.sessionid, l.studentid, l.statusid, l.timetaken, l.takenby, l.remarks,
                           s.attendanceid, s.groupid, s.sessdate, s.duration, s.lasttaken,
                           a.course AS courseid, st.acronym AS statusacronym
                      FROM {attendance_log} l
                      JOIN {attendance_sessions} s ON s.id = l.sessionid
                      JOIN {attendance} a ON a.id = s.attendanceid
                 LEFT JOIN {attendance_statuses} st ON st.id = l.statusid
                     WHERE $where
                  ORDER BY l.id";
            $records = $DB->get_recordset_sql($sql, $sqlparams, $page * $perpage, $perpage + 1);
            foreach ($records as $record) {
                if (count($logs) == $perpage) {
                    $hasmore = true;
                    break;
                }
                $logs[] = [
                    'id' => (int) $record->id,
                    'courseid' => (int) $record->courseid,
                    'attendanceid' => (int) $record->attendanceid,
                    'sessionid' => (int) $record->sessionid,
                    'groupid' => (int) $record->groupid,
                    'sessdate' => (int) $record->sessdate,
                    'duration' => (int) $record->duration,
                    'lasttaken' => $record->lasttaken === null ? null : (int) $record->lasttaken,
                    'studentid' => (int) $record->studentid,
                    'statusid' => (int) $record->statusid,
                    'statusacronym' => $record->statusacronym,
                    'timetaken' => (int) $record->timetaken,
                    'takenby' => (int) $record->takenby,
                    'remarks' => $record->remarks,
                ];
            }
            $records->close();
        }

        return [
            'logs' => $logs,
            'page' => $page,
            'perpage' => $perpage,
            'hasmore' => $hasmore,
            'timenow' => $timenow,
            'warnings' => $warnings,
        ];
    }

    /**
     * Whether mod_attendance is installed (its code and its tables).
     *
     * @return bool
     */
    public static function attendance_installed(): bool {
        global $DB;
        return \core_component::get_component_directory('mod_attendance') !== null
            && $DB->record_exists('modules', ['name' => 'attendance']);
    }

    /**
     * The activities asked (by id or by course) that the caller may read, sorted.
     *
     * @param int[] $attendanceids
     * @param int[] $courseids
     * @return array attendance ids, warnings
     */
    private static function allowed_instances(array $attendanceids, array $courseids): array {
        global $DB;
        $warnings = [];
        $instances = [];
        if ($attendanceids) {
            $instances = $DB->get_records_list('attendance', 'id', $attendanceids, '', 'id, course');
            foreach ($attendanceids as $id) {
                if (!isset($instances[$id])) {
                    $warnings[] = self::warning('attendance', $id, 'invalidattendanceid', 'No attendance activity with this id');
                }
            }
        }
        if ($courseids) {
            $courses = $DB->get_records_list('course', 'id', $courseids, '', 'id');
            foreach ($courseids as $id) {
                if (!isset($courses[$id])) {
                    $warnings[] = self::warning('course', $id, 'invalidcourseid', 'No course with this id');
                }
            }
            if ($courses) {
                $instances += $DB->get_records_list('attendance', 'course', array_keys($courses), '', 'id, course');
            }
        }
        ksort($instances);

        $allowed = [];
        foreach ($instances as $instance) {
            $cm = get_fast_modinfo($instance->course)->instances['attendance'][$instance->id] ?? null;
            if (!$cm) {
                $warnings[] = self::warning('attendance', $instance->id, 'invalidcoursemodule',
                    'The attendance activity has no course module (being deleted)');
                continue;
            }
            $context = \context_module::instance($cm->id);
            try {
                self::validate_context($context);
            } catch (\Exception $e) {
                $warnings[] = self::warning('attendance', $instance->id, 'cannotaccess', $e->getMessage());
                continue;
            }
            if (!has_any_capability(self::CAPABILITIES, $context)) {
                $warnings[] = self::warning('attendance', $instance->id, 'nopermissions',
                    get_string('nopermissions', 'error', get_capability_string('mod/attendance:takeattendances')));
                continue;
            }
            $allowed[] = (int) $instance->id;
        }
        return [$allowed, $warnings];
    }

    /**
     * A warning.
     *
     * @param string $item
     * @param int $itemid
     * @param string $code
     * @param string $message
     * @return array
     */
    private static function warning(string $item, int $itemid, string $code, string $message): array {
        return ['item' => $item, 'itemid' => $itemid, 'warningcode' => $code, 'message' => $message];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'logs' => new external_multiple_structure(new external_single_structure([
                'id' => new external_value(PARAM_INT, 'Record id (attendance_log)'),
                'courseid' => new external_value(PARAM_INT, 'Course id'),
                'attendanceid' => new external_value(PARAM_INT, 'Attendance activity (instance) id'),
                'sessionid' => new external_value(PARAM_INT, 'Session id'),
                'groupid' => new external_value(PARAM_INT, 'The session\'s group, 0 for all students'),
                'sessdate' => new external_value(PARAM_INT, 'Session start (unix time)'),
                'duration' => new external_value(PARAM_INT, 'Session duration (seconds)'),
                'lasttaken' => new external_value(PARAM_INT, 'When the session\'s register was last taken',
                    VALUE_REQUIRED, null, NULL_ALLOWED),
                'studentid' => new external_value(PARAM_INT, 'Student (user id)'),
                'statusid' => new external_value(PARAM_INT, 'Status id (per activity)'),
                'statusacronym' => new external_value(PARAM_TEXT, 'The status\'s acronym (P, L, E, A by default)',
                    VALUE_REQUIRED, null, NULL_ALLOWED),
                'timetaken' => new external_value(PARAM_INT, 'When the record was written'),
                'takenby' => new external_value(PARAM_INT, 'Who wrote it (user id)'),
                'remarks' => new external_value(PARAM_TEXT, 'Remarks', VALUE_REQUIRED, null, NULL_ALLOWED),
            ])),
            'page' => new external_value(PARAM_INT, 'This page'),
            'perpage' => new external_value(PARAM_INT, 'Rows per page'),
            'hasmore' => new external_value(PARAM_BOOL, 'Another page follows'),
            'timenow' => new external_value(PARAM_INT, 'Server time when the call started: page 0\'s is the next since'),
            'warnings' => new external_warnings(),
        ]);
    }
}
