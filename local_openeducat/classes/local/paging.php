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

namespace local_openeducat\local;

use invalid_parameter_exception;

/**
 * The checks shared by the paged functions.
 *
 * @package    local_openeducat
 * @copyright  2026 openeducat_moodle contributors
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class paging {

    /**
     * Refuse a negative time or page, or a page size out of range.
     *
     * @param int $since
     * @param int $page
     * @param int $perpage
     * @param int $maxperpage
     * @throws invalid_parameter_exception
     */
    public static function check(int $since, int $page, int $perpage, int $maxperpage): void {
        if ($since < 0) {
            throw new invalid_parameter_exception('since must be 0 or a unix time');
        }
        if ($page < 0) {
            throw new invalid_parameter_exception('page must be 0 or more');
        }
        if ($perpage < 1 || $perpage > $maxperpage) {
            throw new invalid_parameter_exception("perpage must be between 1 and $maxperpage");
        }
    }
}
