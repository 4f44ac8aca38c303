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
 * The plugin's web-service functions and the connector's external service.
 *
 * The service "OpenEduCat Sync" (shortname oec_sync) holds exactly the functions the
 * OpenEduCat connector calls: Moodle's own (the connector's catalogue, copied in
 * classes/local/catalogue.php) and this plugin's. Moodle creates it on install and resets
 * its function list to this one on every upgrade of the plugin; an administrator cannot add
 * or remove functions of a built-in service. A service created earlier by hand or by the
 * connector's docker set-up with the same shortname is taken over on install (db/install.php),
 * its users and tokens kept.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

require_once(__DIR__ . '/../classes/local/catalogue.php');

use local_openeducat\local\catalogue;

$functions = [
    'local_openeducat_get_course_completions' => [
        'classname' => 'local_openeducat\external\get_course_completions',
        'description' => 'Course completion of every tracked user of many courses, changed since a time, paged.',
        'type' => 'read',
        'capabilities' => 'report/completion:view',
    ],
    'local_openeducat_get_attendance_logs' => [
        'classname' => 'local_openeducat\external\get_attendance_logs',
        'description' => 'Attendance records (mod_attendance) of many activities or courses, taken or changed since a time, '
            . 'paged.',
        'type' => 'read',
        'capabilities' => 'mod/attendance:takeattendances',
    ],
];

$services = [
    catalogue::SERVICE_NAME => [
        'shortname' => catalogue::SERVICE_SHORTNAME,
        'functions' => catalogue::service_functions(),
        'enabled' => 1,
        'restrictedusers' => 1,
        'downloadfiles' => 0,
        'uploadfiles' => 0,
    ],
];
