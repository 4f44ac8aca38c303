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

/**
 * Event observers: what tells the connector that a course completion changed.
 *
 * A course completion's own fields do not always show that it changed: the completion time
 * is that of the last criterion, which may be earlier than the moment the course is marked
 * complete (cron aggregation, date and duration criteria), and a reset deletes the rows.
 * These observers note the server time of such changes in local_openeducat_compl.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$observers = [
    [
        'eventname' => '\core\event\course_completed',
        'callback' => '\local_openeducat\observer::course_completed',
    ],
    [
        'eventname' => '\core\event\course_completion_updated',
        'callback' => '\local_openeducat\observer::course_changed',
    ],
    [
        'eventname' => '\core\event\course_reset_ended',
        'callback' => '\local_openeducat\observer::course_changed',
    ],
    [
        // Deleting an activity that is a completion criterion deletes every course completion.
        'eventname' => '\core\event\course_module_deleted',
        'callback' => '\local_openeducat\observer::course_changed',
    ],
    [
        'eventname' => '\core\event\course_deleted',
        'callback' => '\local_openeducat\observer::course_deleted',
    ],
    [
        'eventname' => '\core\event\user_deleted',
        'callback' => '\local_openeducat\observer::user_deleted',
    ],
];
