"""The Moodle Dashboard: one card per instance, computed for all at once."""

import datetime
import re

from lxml import etree

from odoo import fields
from odoo.tests import tagged
from odoo.tools.safe_eval import safe_eval

from odoo.addons.openeducat_moodle.models.moodle_instance_dashboard import RUN_KINDS
from odoo.addons.openeducat_moodle.models.moodle_sync_run import KINDS
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import MoodleCase

XMLID = "openeducat_moodle.%s"


@tagged("post_install", "-at_install")
class TestDashboard(MoodleCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.now = fields.Datetime.now().replace(microsecond=0)
        cls.north = cls.env["moodle.instance"].create(
            {"name": "Campus North", "base_url": "https://north.test", "token": "t"}
        )

    def ago(self, **delta):
        return self.now - datetime.timedelta(**delta)

    def add_run(self, instance, kind, state, when):
        return self.env["moodle.sync.run"].create(
            {
                "instance_id": instance.id,
                "kind": kind,
                "state": state,
                "start_date": when,
            }
        )

    def mapping(self, instance, state, number):
        return self.env["moodle.mapping"].create(
            {
                "instance_id": instance.id,
                "res_model": "op.subject",
                "res_id": number,
                "moodle_model": "course",
                "external_key": f"oec_subj_{number}_course_1",
                "moodle_id": number,
                "state": state,
            }
        )

    def kanban(self, user=None):
        """The kanban as ``user`` (default: admin, in every group) gets it."""
        user = user or self.env.ref("base.user_admin")
        return (
            self.env["moodle.instance"].with_user(user).get_views([(False, "kanban")])
        )

    # === THE COMPUTED FIELDS === #

    def test_last_run_of_each_kind_per_instance(self):
        main, north = self.instance, self.north
        self.add_run(main, "push", "done", self.ago(hours=3))
        self.add_run(main, "push", "failed", self.ago(hours=1))  # the latest push
        self.add_run(main, "grades", "partial", self.ago(hours=2))
        self.add_run(main, "health", "done", self.ago(minutes=30))
        self.add_run(main, "drift", "interrupted", self.ago(days=1))
        # Same start: the later run (higher id) is the last, as in the run log.
        self.add_run(main, "completion", "failed", self.ago(hours=5))
        self.add_run(main, "completion", "done", self.ago(hours=5))
        self.add_run(north, "push", "running", self.ago(minutes=5))
        self.add_run(north, "push", "done", self.ago(days=2))
        self.add_run(north, "import", "skipped", self.ago(days=3))
        self.add_run(north, "attendance", "done", self.ago(minutes=10))
        (main | north).invalidate_recordset()

        expected = {
            main: {
                "push": (self.ago(hours=1), "failed"),
                "grades": (self.ago(hours=2), "partial"),
                "completion": (self.ago(hours=5), "done"),
                "attendance": (False, False),
                "health": (self.ago(minutes=30), "done"),
                "drift": (self.ago(days=1), "interrupted"),
                "import": (False, False),
            },
            north: {
                "push": (self.ago(minutes=5), "running"),
                "grades": (False, False),
                "completion": (False, False),
                "attendance": (self.ago(minutes=10), "done"),
                "health": (False, False),
                "drift": (False, False),
                "import": (self.ago(days=3), "skipped"),
            },
        }
        for instance, kinds in expected.items():
            for kind, (date, state) in kinds.items():
                with self.subTest(instance=instance.name, kind=kind):
                    self.assertEqual(instance[f"last_{kind}_date"], date)
                    self.assertEqual(instance[f"last_{kind}_state"], state)

        # The labels are the run log's own.
        fields_info = self.env["moodle.instance"].fields_get(["last_push_state"])
        self.assertEqual(
            fields_info["last_push_state"]["selection"],
            self.env["moodle.sync.run"].fields_get(["state"])["state"]["selection"],
        )

    def test_every_kind_of_run_has_its_fields(self):
        self.assertEqual(RUN_KINDS, tuple(kind for kind, _label in KINDS))
        model = self.env["moodle.instance"]
        for kind in RUN_KINDS:
            self.assertEqual(model._fields[f"last_{kind}_date"].type, "datetime")
            self.assertEqual(model._fields[f"last_{kind}_state"].type, "selection")
        # A new kind of run shows on the dashboard at once.
        self.add_run(self.instance, "drift", "done", self.now)
        self.assertEqual(self.instance.last_drift_state, "done")

    def test_counts_health_colour_and_held_unenrolments(self):
        main, north = self.instance, self.north
        self.mapping(main, "pending", 1)
        self.mapping(main, "blocked", 2)
        self.mapping(main, "error", 3)
        self.mapping(north, "failed", 4)
        self.mapping(north, "synced", 5)
        main.write({"last_sync_date": self.ago(hours=1)})
        self.env.cr.execute(
            "UPDATE moodle_instance SET health_state = 'access' WHERE id = %s",
            [north.id],
        )
        north.write({"unenrol_held_keys": ["a", "b"], "unenrol_held_count": 2})
        (main | north).invalidate_recordset()
        self.assertEqual(
            (main.pending_count, main.failed_count, main.last_sync_date),
            (2, 1, self.ago(hours=1)),
        )
        self.assertEqual((north.pending_count, north.failed_count), (0, 1))
        self.assertEqual((north.unenrol_held_count, main.unenrol_held_count), (2, 0))
        self.assertEqual(main.dashboard_color, 0)  # never checked
        self.assertEqual(north.dashboard_color, 1)  # paused: red
        colours = {}
        for state in ("ok", "stale", "error", "access"):
            self.env.cr.execute(
                "UPDATE moodle_instance SET health_state = %s WHERE id = %s",
                [state, main.id],
            )
            main.invalidate_recordset()
            colours[state] = main.dashboard_color
        self.assertEqual(colours, {"ok": 10, "stale": 3, "error": 2, "access": 1})

    def test_queries_do_not_grow_with_the_number_of_instances(self):
        spec = self.kanban_spec()
        # OpenEduCat creates departments one at a time.
        departments = self.env["op.department"].create(
            {"name": "Science", "code": "SCI"}
        ) | self.env["op.department"].create({"name": "Arts", "code": "ART"})

        def queries(count):
            instances = self.env["moodle.instance"].create(
                [
                    {
                        "name": f"Campus {count}-{i}",
                        "base_url": f"https://c{i}.test",
                        "department_ids": [(6, 0, departments[: i % 2 + 1].ids)],
                    }
                    for i in range(count)
                ]
            )
            for number, instance in enumerate(instances):
                for kind in RUN_KINDS:
                    self.add_run(instance, kind, "done", self.ago(hours=2))
                    self.add_run(instance, kind, "partial", self.ago(hours=1))
                self.mapping(instance, "error", 1000 * count + number)
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            # What the kanban asks: a search and a read of its fields.
            records = instances.web_search_read([("id", "in", instances.ids)], spec)[
                "records"
            ]
            spent = self.env.cr.sql_log_count - before
            self.assertEqual(len(records), count)
            for record in records:
                self.assertEqual(record["last_import_state"], "partial")
                self.assertEqual(record["failed_count"], 1)
                self.assertTrue(record["department_ids"][0]["display_name"])
            return spent

        two = queries(2)
        self.assertEqual(queries(6), two)
        self.assertLessEqual(two, 8)

    # === THE VIEW, ITS ACTION AND ITS MENU === #

    def kanban_field_names(self, user=None):
        arch = etree.fromstring(self.kanban(user)["views"]["kanban"]["arch"])
        return {node.get("name") for node in arch.iter("field")}

    def kanban_spec(self, user=None):
        """What the web client reads for the kanban: its fields, and the
        names of the departments its tags show."""
        spec = {name: {} for name in self.kanban_field_names(user)}
        if "department_ids" in spec:
            spec["department_ids"] = {"fields": {"display_name": {}}}
        return spec

    def test_kanban_uses_fields_that_exist(self):
        result = self.kanban()
        view = result["views"]["kanban"]
        self.assertEqual(
            view["id"], self.env.ref(XMLID % "moodle_instance_view_kanban_dashboard").id
        )
        arch = etree.fromstring(view["arch"])
        # Odoo 17's syntax, not 18's kanban-card.
        self.assertTrue(arch.xpath("//templates/t[@t-name='kanban-box']"))
        self.assertFalse(arch.xpath("//t[@t-name='kanban-card']"))
        model = self.env["moodle.instance"]
        declared = {node.get("name") for node in arch.iter("field")}
        self.assertFalse(declared - set(model._fields), "unknown fields")
        # A field a template reads must be declared, or the client lacks it.
        read = set(re.findall(r"\brecord\.(\w+)\.", view["arch"]))
        self.assertTrue(read)
        self.assertFalse(read - declared, "read in a template, never declared")
        self.assertFalse(declared - set(result["models"]["moodle.instance"]))
        for kind in RUN_KINDS:
            self.assertIn(f"last_{kind}_date", declared)
            self.assertIn(f"last_{kind}_state", declared)
        for name in (
            "health_state",
            "last_sync_date",
            "pending_count",
            "failed_count",
            "unenrol_held_count",
            "allow_insecure_http",
            "department_ids",
        ):
            self.assertIn(name, declared)
        self.assertIn("Insecure http", view["arch"])

    def test_kanban_buttons_call_methods_that_exist(self):
        arch = etree.fromstring(self.kanban()["views"]["kanban"]["arch"])
        buttons = arch.xpath("//*[@type='object']")
        names = {button.get("name") for button in buttons}
        self.assertEqual(
            names,
            {
                "action_test_connection",
                "action_push_now",
                "action_pull_grades_now",
                "action_retry_failed",
                "action_open_runs",
                "action_open_mappings",
                "action_release_unenrolments",
            },
        )
        model = self.env["moodle.instance"]
        for name in names:
            self.assertTrue(callable(getattr(model, name, None)), name)
        self.assertTrue(arch.xpath("//a[@type='open']"), "no way to the instance")
        release = arch.xpath("//button[@name='action_release_unenrolments']")[0]
        self.assertEqual(release.get("invisible"), "not unenrol_held_count")
        self.assertTrue(release.get("confirm"))

        # Every button runs on an instance where it applies.
        self.mapping(self.instance, "error", 1)
        self.instance.write({"unenrol_held_keys": ["k"], "unenrol_held_count": 1})
        for button in buttons:
            context = safe_eval(button.get("context") or "{}")
            with self.subTest(button=button.get("name"), context=context):
                with trap_jobs():
                    action = getattr(
                        self.instance.with_context(**context), button.get("name")
                    )()
                self.assertIsInstance(action, dict)
                if button.get("name") == "action_open_mappings":
                    state = context["moodle_state"]
                    self.assertIn(
                        ("instance_id", "=", self.instance.id), action["domain"]
                    )
                    self.assertIn(
                        ("state", "in", ("error", "failed"))
                        if state == "failed"
                        else ("state", "in", ("pending", "blocked")),
                        action["domain"],
                    )
        self.assertEqual(self.instance.health_state, "ok")  # Test Connection ran
        self.assertFalse(self.instance.unenrol_held_count)  # released

    def test_action_and_menu_load(self):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            XMLID % "action_moodle_dashboard"
        )
        self.assertEqual(action["res_model"], "moodle.instance")
        self.assertEqual(
            action["views"],
            [
                (
                    self.env.ref(XMLID % "moodle_instance_view_kanban_dashboard").id,
                    "kanban",
                ),
                (self.env.ref(XMLID % "moodle_instance_view_form").id, "form"),
            ],
        )
        menu = self.env.ref(XMLID % "menu_moodle_dashboard")
        self.assertEqual(menu.name, "Moodle Dashboard")
        self.assertEqual(menu.parent_id, self.env.ref(XMLID % "menu_moodle_root"))
        self.assertEqual(menu.action.id, action["id"])

        users = self.env["res.users"].with_context(no_reset_password=True)
        clerk = users.create(
            {
                "name": "Clerk",
                "login": "dashboard_clerk",
                "groups_id": [(6, 0, [self.env.ref("base.group_user").id])],
            }
        )
        manager = users.create(
            {
                "name": "Moodle Manager",
                "login": "dashboard_manager",
                "groups_id": [
                    (
                        6,
                        0,
                        [
                            self.env.ref("base.group_user").id,
                            self.env.ref(XMLID % "group_moodle_manager").id,
                        ],
                    )
                ],
            }
        )
        menus = self.env["ir.ui.menu"]
        self.assertIn(menu.id, menus.with_user(manager)._visible_menu_ids())
        self.assertNotIn(menu.id, menus.with_user(clerk)._visible_menu_ids())
        # What the web client asks when the menu is opened. A Moodle Manager
        # who may not read OpenEduCat's departments sees the rest.
        self.add_run(self.instance, "push", "done", self.now)
        spec = self.kanban_spec(manager)
        self.assertNotIn("department_ids", spec)
        self.assertIn("department_ids", self.kanban_spec())
        result = (
            self.env["moodle.instance"].with_user(manager).web_search_read([], spec)
        )
        record = next(r for r in result["records"] if r["id"] == self.instance.id)
        self.assertEqual(record["last_push_state"], "done")
        faculty = self.env.ref("openeducat_core.group_op_faculty")
        manager.groups_id = [(4, faculty.id)]
        self.instance.department_ids = self.env["op.department"].create(
            {"name": "Science", "code": "SCI"}
        )
        result = (
            self.env["moodle.instance"]
            .with_user(manager)
            .web_search_read([], self.kanban_spec(manager))
        )
        record = next(r for r in result["records"] if r["id"] == self.instance.id)
        self.assertEqual(
            [d["display_name"] for d in record["department_ids"]], ["Science"]
        )
