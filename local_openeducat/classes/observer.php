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

/**
 * Notes the course completion changes that the completion tables do not date.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class observer {

    /** @var string The table of changes. */
    public const TABLE = 'local_openeducat_compl';

    /**
     * A user completed a course: note it at the current time.
     *
     * @param \core\event\course_completed $event
     */
    public static function course_completed(\core\event\course_completed $event): void {
        self::note((int) $event->courseid, (int) $event->relateduserid);
    }

    /**
     * Every completion of a course may have changed (criteria edited, course reset, a criterion
     * activity deleted): note the course (user 0).
     *
     * @param \core\event\base $event
     */
    public static function course_changed(\core\event\base $event): void {
        if ($event->courseid && $event->courseid != SITEID) {
            self::note((int) $event->courseid, 0);
        }
    }

    /**
     * A course is gone: forget its changes.
     *
     * @param \core\event\course_deleted $event
     */
    public static function course_deleted(\core\event\course_deleted $event): void {
        global $DB;
        $DB->delete_records(self::TABLE, ['courseid' => $event->objectid]);
    }

    /**
     * A user is gone: forget their changes.
     *
     * @param \core\event\user_deleted $event
     */
    public static function user_deleted(\core\event\user_deleted $event): void {
        global $DB;
        $DB->delete_records(self::TABLE, ['userid' => $event->objectid]);
    }

    /**
     * Note a change: one row per course and user, its time moved forward.
     *
     * @param int $courseid
     * @param int $userid 0 for the whole course
     */
    public static function note(int $courseid, int $userid): void {
        global $DB;
        $now = time();
        $ids = $DB->get_fieldset_select(self::TABLE, 'id', 'courseid = ? AND userid = ?', [$courseid, $userid]);
        if ($ids) {
            // Two requests may have added a row each: the newest time is what counts.
            [$insql, $params] = $DB->get_in_or_equal($ids);
            $DB->set_field_select(self::TABLE, 'timechanged', $now, "id $insql AND timechanged < ?",
                array_merge($params, [$now]));
            return;
        }
        $DB->insert_record(self::TABLE, (object) [
            'courseid' => $courseid,
            'userid' => $userid,
            'timechanged' => $now,
        ], false);
    }
}
