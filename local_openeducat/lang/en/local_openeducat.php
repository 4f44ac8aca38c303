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
 * English strings for local_openeducat.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['attendancenotinstalled'] = 'The attendance activity (mod_attendance) is not installed on this site.';
$string['pluginname'] = 'OpenEduCat connector';
$string['privacy:metadata:local_openeducat_compl'] = 'When a user\'s course completion changed, so that the OpenEduCat connector reads only what changed.';
$string['privacy:metadata:local_openeducat_compl:courseid'] = 'The course.';
$string['privacy:metadata:local_openeducat_compl:timechanged'] = 'When the completion changed.';
$string['privacy:metadata:local_openeducat_compl:userid'] = 'The user whose completion changed.';
