"""The benchmark's tables (Markdown) and the targets of issues 7 and 15."""

import collections

from openeducat_moodle.moodle.catalogue import FUNCTIONS, WRITE

TARGET_RATIO = 1.05
# Grade pull: queries allowed per course and per exam it writes (none per grade).
SQL_PER_COURSE_OR_EXAM = 4
TARGET_OUTSIDE = 0.25
TARGET_NOCHANGE_S = 30.0
TARGET_PEAK_KIB = 1024 * 1024
TARGET_REAL_RATIO = 1.25
# Issue 15: reads that cost what changed.
TARGET_PLUGIN_COMPLETION_CALLS = 200
TARGET_PLUGIN_ATTENDANCE_CALLS = 10
SITE_INFO = "core_webservice_get_site_info"


def is_write(function):
    spec = FUNCTIONS.get(function)
    return bool(spec and spec.kind == WRITE)


def writes(calls):
    return sum(n for f, n in calls.items() if is_write(f))


def reads(calls):
    return sum(n for f, n in calls.items() if not is_write(f))


def _ratio(actual, minimum):
    if not minimum:
        return "–" if not actual else "∞"
    return f"{actual / minimum:.3f}"


def _mib(kib):
    return "–" if kib is None else f"{kib / 1024:.0f}"


def summary_table(phases, title=None):
    """One row per phase: time, calls against the minimum, SQL, memory."""
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += [
        (
            "| phase | wall s | in Moodle s | outside Moodle | write calls | min | "
            "writes ÷ min | read calls | all ÷ min | SQL queries | peak RSS MiB |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in phases:
        minimum = sum(p.minimum.values())
        w, r = writes(p.calls), reads(p.calls)
        if p.minimum and all(not is_write(f) for f in p.minimum):
            # a pull: its minimum is in read calls
            ratio_w, ratio_all = "–", _ratio(w + r, minimum)
        else:
            ratio_w, ratio_all = _ratio(w, minimum), _ratio(w + r, minimum)
        outside = 1 - p.moodle_time / p.wall if p.wall else 0.0
        lines.append(
            f"| {p.name} | {p.wall:.1f} | {p.moodle_time:.1f} | {outside:.0%} | "
            f"{w:,} | {minimum:,} | {ratio_w} | {r:,} | {ratio_all} | "
            f"{'–' if p.sql is None else format(p.sql, ',')} | "
            f"{_mib(p.peak_rss_kib)} |"
        )
    return "\n".join(lines)


def calls_table(phases):
    """Web-service calls by function and phase (minimum in brackets)."""
    functions = sorted(
        {f for p in phases for f in p.calls} | {f for p in phases for f in p.minimum},
        key=lambda f: (not is_write(f), f),
    )
    short = [p.name.split(" (")[0] for p in phases]
    lines = [
        "| function | w/r | " + " | ".join(short) + " |",
        "|---|---|" + "--:|" * len(phases),
    ]
    for f in functions:
        cells = []
        for p in phases:
            n = p.calls.get(f, 0)
            cell = f"{n:,}" if n else "·"
            if f in p.minimum:
                cell += f" ({p.minimum[f]:,})"
            cells.append(cell)
        kind = "w" if is_write(f) else "r"
        lines.append(f"| `{f}` | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def naive_table(connector, naive):
    """The connector and a simple connector, phase by phase."""
    lines = [
        (
            "| phase | calls (connector) | calls (naive) | wall s (connector) | "
            "wall s (naive) | calls saved | time saved |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for a, b in zip(connector, naive, strict=False):
        ca, cb = sum(a.calls.values()), sum(b.calls.values())
        saved = f"{cb / ca:.1f}×" if ca else ("–" if not cb else "all")
        faster = f"{b.wall / a.wall:.1f}×" if a.wall else "–"
        lines.append(
            f"| {a.name} | {ca:,} | {cb:,} | {a.wall:.1f} | {b.wall:.1f} | "
            f"{saved} | {faster} |"
        )
    return "\n".join(lines)


# Issue 15's read phases, without the plugin and with it (bench/reads.py's
# names): the run, the phase without, the phase with.
PLUGIN_PAIRS = (
    ("completion, first run", "completion pull", "completion, plugin, whole read"),
    (
        "completion, next run (nobody active / nothing new)",
        "completion, nobody active",
        "completion, plugin, nothing new",
    ),
    (
        "completion, the daily whole read",
        "completion sweep, a day later",
        "completion, plugin, whole read",
    ),
    ("attendance, first run", "attendance pull", "attendance pull, plugin"),
    (
        "attendance, nothing new",
        "attendance, nothing new",
        "attendance, plugin, nothing new",
    ),
)


def plugin_table(phases, loads=None):
    """The read phases side by side: without the companion plugin and with
    it (wall, time in Moodle, calls; the 1-minute load average at the end of
    each phase when ``loads`` maps phase names to ``os.getloadavg()``)."""
    by = {p.name: p for p in phases}
    loads = loads or {}

    def cells(phase):
        if phase is None:
            return "–", "–", "–", "–"
        load = loads.get(phase.name)
        return (
            f"{phase.wall:.1f}",
            f"{phase.moodle_time:.1f}",
            f"{sum(phase.calls.values()):,}",
            "–" if load is None else f"{load[0]:.1f}",
        )

    lines = [
        (
            "| run | wall s without | wall s with | in Moodle s without | "
            "in Moodle s with | calls without | calls with | load without / with |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run, without, with_ in PLUGIN_PAIRS:
        a, b = by.get(without), by.get(with_)
        if a is None and b is None:
            continue
        (wa, ma, ca, la), (wb, mb, cb, lb) = cells(a), cells(b)
        lines.append(
            f"| {run} | {wa} | {wb} | {ma} | {mb} | {ca} | {cb} | {la} / {lb} |"
        )
    return "\n".join(lines)


def notes(phases):
    lines = []
    for p in phases:
        if p.summary:
            lines.append(f"- {p.name}: {p.summary}")
        for note in p.notes:
            lines.append(f"  - {note}")
    return "\n".join(lines)


# ``machine``: a time or memory target, which depends on the machine and its
# load; ``--check counts`` (the test command's smoke run) leaves those out.
Check = collections.namedtuple("Check", "target met detail machine", defaults=(False,))


def checks(phases, info, reference=False):
    """The issue's targets this run can judge, as :class:`Check` rows."""
    by = {p.name: p for p in phases}
    mode = info.get("mode")
    out = []
    initial = by.get("initial full push")
    if initial:
        minimum = sum(initial.minimum.values())
        w, total = writes(initial.calls), sum(initial.calls.values())
        out.append(
            Check(
                "initial push: write calls ≤ 1.05 × minimum",
                w <= TARGET_RATIO * minimum,
                f"{w:,} write calls, minimum {minimum:,} "
                f"(ratio {w / minimum:.3f}); with the {total - w} read "
                f"look-ups {total:,} calls (ratio {total / minimum:.3f})",
            )
        )
        outside = 1 - initial.moodle_time / initial.wall
        out.append(
            Check(
                "initial push: time outside Moodle ≤ 25 % of wall",
                outside <= TARGET_OUTSIDE,
                f"{outside:.1%} ({initial.wall - initial.moodle_time:.1f} s of "
                f"{initial.wall:.1f} s)",
                machine=True,
            )
        )
        if mode == "odoo" and initial.peak_rss_kib:
            out.append(
                Check(
                    "full push peak memory (Odoo mode) ≤ 1 GiB",
                    initial.peak_rss_kib <= TARGET_PEAK_KIB,
                    f"{initial.peak_rss_kib / 1024:.0f} MiB",
                    machine=True,
                )
            )
    nochange = by.get("no-change full push")
    if nochange:
        w = writes(nochange.calls)
        out.append(
            Check("no-change push: zero write calls", w == 0, f"{w} write calls")
        )
        if mode == "odoo" and reference:
            out.append(
                Check(
                    "no-change push (Odoo, reference): ≤ 30 s",
                    nochange.wall <= TARGET_NOCHANGE_S,
                    f"{nochange.wall:.1f} s",
                    machine=True,
                )
            )
    changed = by.get("1%-changed push")
    if changed:
        minimum = sum(changed.minimum.values())
        w = writes(changed.calls)
        out.append(
            Check(
                "1 % changed: write calls ≤ 1.05 × minimum",
                w <= TARGET_RATIO * minimum,
                f"{w} write calls, minimum {minimum} (ratio {_ratio(w, minimum)})",
            )
        )
    grades = by.get("grade pull (all courses)")
    if grades:
        courses = grades.minimum.get("gradereport_user_get_grade_items", 0)
        n = grades.calls.get("gradereport_user_get_grade_items", 0)
        out.append(
            Check(
                "grade pull: one gradebook call per course",
                n == courses,
                f"{n:,} gradebook calls for {courses:,} courses",
            )
        )
        if grades.sql is not None:
            written = info.get("grades_written") or 0
            exams = info.get("exams_written") or 0
            per_course = grades.sql / courses if courses else 0
            # The pull writes one exam per grade item and batch: its queries
            # may grow with courses and their exams, by a constant each, never
            # with the grades (checked across grade counts in BENCHMARKS.md).
            bound = SQL_PER_COURSE_OR_EXAM * (courses + exams)
            out.append(
                Check(
                    "grade pull: SQL grows with courses, not grades",
                    written == 0 or grades.sql <= bound,
                    f"{grades.sql:,} queries for {courses:,} courses, {exams:,} "
                    f"exams and {written:,} grades written ({per_course:,.0f} per "
                    f"course, {grades.sql / written if written else 0:.2f} per "
                    f"grade; bound {SQL_PER_COURSE_OR_EXAM} per course or exam: "
                    f"{bound:,})",
                )
            )
    out += read_checks(by)
    return out


def read_checks(by):
    """Issue 15's targets on the read phases (:mod:`.reads`)."""
    out = []
    quiet = by.get("completion, nobody active")
    if quiet:
        courses = sum(quiet.minimum.values())
        calls = sum(quiet.calls.values())
        out.append(
            Check(
                "completion, nobody active: ≤ 2 calls per course with criteria",
                calls <= 2 * courses,
                f"{calls:,} calls for {courses:,} courses with criteria "
                f"({_ratio(calls, courses)} per course)",
            )
        )
    sweep = by.get("completion sweep, a day later")
    if sweep:
        ((function, students),) = sweep.minimum.items()
        asked = sweep.calls.get(function, 0)
        out.append(
            Check(
                "completion sweep: ≤ one call per student not complete",
                asked <= students,
                f"{asked:,} status calls for {students:,} students not complete "
                f"(+{sum(sweep.calls.values()) - asked} other calls)",
            )
        )
    plugin = by.get("completion, plugin, whole read")
    if plugin:
        calls = sum(plugin.calls.values())
        out.append(
            Check(
                f"completion with the plugin: ≤ {TARGET_PLUGIN_COMPLETION_CALLS} calls",
                calls <= TARGET_PLUGIN_COMPLETION_CALLS,
                f"{calls:,} calls (whole read), "
                f"{sum(by['completion, plugin, nothing new'].calls.values()):,} "
                "when nothing changed",
            )
        )
    nothing = by.get("attendance, nothing new")
    if nothing:
        ((function, activities),) = nothing.minimum.items()
        read = nothing.calls.get(function, 0)
        others = {f: n for f, n in nothing.calls.items() if f != function}
        out.append(
            Check(
                "attendance, nothing new: ≤ one call per activity",
                read <= activities and set(others) <= {SITE_INFO},
                f"{read:,} session reads for {activities:,} activities, "
                f"+{sum(others.values())} site info",
            )
        )
    nothing = by.get("attendance, plugin, nothing new")
    if nothing:
        calls = sum(nothing.calls.values())
        out.append(
            Check(
                "attendance with the plugin, nothing new: "
                f"≤ {TARGET_PLUGIN_ATTENDANCE_CALLS} calls",
                calls <= TARGET_PLUGIN_ATTENDANCE_CALLS,
                f"{calls} calls",
            )
        )
    return out


def checks_table(rows):
    lines = ["| target | verdict | measured |", "|---|---|---|"]
    for row in rows:
        verdict = "met" if row.met else "**not met**"
        lines.append(f"| {row.target} | {verdict} | {row.detail} |")
    return "\n".join(lines)
