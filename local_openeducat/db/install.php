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
 * Steps run once, when the plugin is installed.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

/**
 * Records when change tracking began and takes over an existing connector service.
 *
 * Runs before Moodle creates the services of db/services.php. Moodle refuses to install a
 * plugin whose service shortname is already used, so a service "oec_sync" made earlier (by
 * hand or by the connector's docker set-up) becomes this plugin's: Moodle then updates it
 * instead of creating it, and its authorised users and tokens stay as they are.
 *
 * @return bool
 */
function xmldb_local_openeducat_install() {
    global $DB;
    require_once(__DIR__ . '/../classes/local/catalogue.php');

    // Changes before this time are not in local_openeducat_compl: a read "since" an earlier
    // time lists every row (see get_course_completions).
    set_config('trackingsince', time(), 'local_openeducat');

    $shortname = \local_openeducat\local\catalogue::SERVICE_SHORTNAME;
    $name = \local_openeducat\local\catalogue::SERVICE_NAME;
    $service = $DB->get_record('external_services', ['shortname' => $shortname]);
    if ($service && empty($service->component)) {
        // Another service may hold the name (unique): it keeps its own with a suffix.
        $other = $DB->get_record('external_services', ['name' => $name]);
        if ($other && $other->id != $service->id) {
            $DB->set_field('external_services', 'name', $name . ' (' . $other->id . ')', ['id' => $other->id]);
        }
        $DB->update_record('external_services', (object) [
            'id' => $service->id,
            'name' => $name,
            'component' => 'local_openeducat',
            'timemodified' => time(),
        ]);
    } else if (!$service) {
        $other = $DB->get_record('external_services', ['name' => $name]);
        if ($other) {
            $DB->set_field('external_services', 'name', $name . ' (' . $other->id . ')', ['id' => $other->id]);
        }
    }
    return true;
}
