from lxml import etree
from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import BASE_URL, MoodleCase


@tagged("post_install", "-at_install")
class TestModels(MoodleCase):
    def test_token_write_only_for_moodle_managers(self):
        user = self.env["res.users"].create(
            {
                "name": "Registrar",
                "login": "registrar_moodle_test",
                "groups_id": [(6, 0, [self.env.ref("base.group_user").id])],
            }
        )
        with self.assertRaises(AccessError):
            self.instance.with_user(user).read(["token"])
        manager = self.env.ref("openeducat_moodle.group_moodle_manager")
        user.groups_id = [(4, manager.id)]
        # Write-only, even for a Moodle Manager: they see that one is set.
        self.assertEqual(
            self.instance.with_user(user).read(["token", "token_set"])[0],
            {"id": self.instance.id, "token": False, "token_set": True},
        )

    def test_token_is_not_copied_nor_exported(self):
        copy = self.instance.copy()
        self.assertFalse(copy.sudo().token)
        fields = self.env["moodle.instance"].fields_get()
        self.assertFalse(fields["token"]["exportable"])
        with self.assertRaises(UserError):
            self.instance.export_data(["name", "token"])
        self.assertEqual(
            self.instance.export_data(["name"])["datas"], [["Test Moodle"]]
        )

    def test_client_masks_token(self):
        client = self.instance._get_client()
        self.assertNotIn("simtoken", repr(client))
        self.assertEqual(client.base_url, BASE_URL)

    def test_base_url_must_be_the_wwwroot(self):
        with self.assertRaises(ValidationError):
            self.instance.base_url = "moodle.test"
        with self.assertRaises(ValidationError):
            self.instance.base_url = BASE_URL + "/webservice/rest/server.php"

    def test_mapping_is_unique_per_instance_kind_and_key(self):
        vals = {
            "instance_id": self.instance.id,
            "res_model": "op.subject",
            "res_id": 1,
            "moodle_model": "course",
            "external_key": "oec_subj_1_course_1",
            "moodle_id": 7,
        }
        self.env["moodle.mapping"].create(vals)
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaises(IntegrityError),
            self.env.cr.savepoint(),
        ):
            self.env["moodle.mapping"].create(vals)
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaises(IntegrityError),
            self.env.cr.savepoint(),
        ):
            self.env["moodle.mapping"].create(
                dict(vals, external_key="oec_subj_2_course_1")
            )

    def test_test_connection_reports_release_and_missing_functions(self):
        self.fm.remove_function("core_group_create_groups")
        action = self.instance.action_test_connection()
        self.assertEqual(self.instance.moodle_release, "4.5.6 (Build: 20250811)")
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("core_group_create_groups", action["params"]["message"])
        self.assertEqual(self.instance.health_state, "ok")

    def test_test_connection_with_bad_token_flags_instance(self):
        self.instance.token = "wrong"
        action = self.instance.action_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertEqual(self.instance.health_state, "access")
        self.assertNotIn("wrong", self.instance.health_message)
        self.assertIn("Manage tokens", self.instance.health_message)

    def test_every_view_of_the_addon_loads(self):
        data = self.env["ir.model.data"].search(
            [("module", "=", "openeducat_moodle"), ("model", "=", "ir.ui.view")]
        )
        views = self.env["ir.ui.view"].browse(data.mapped("res_id"))
        self.assertGreaterEqual(len(views), 5)
        for view in views:
            # Rendered as the web client asks for it: the combined view (an
            # extension inside its parent), with every field it names known.
            model = self.env[view.model]
            root = view
            while root.inherit_id and root.mode == "extension":
                root = root.inherit_id
            result = model.get_views([(root.id, root.type)])
            arch = etree.fromstring(result["views"][root.type]["arch"])
            names = {
                node.get("name")
                for node in arch.iter("field")
                if not any(p.tag == "field" for p in node.iterancestors())
            }
            self.assertTrue(names, f"{view.xml_id or view.name} shows no field")
            known = set(result["models"][view.model])
            self.assertFalse(names - known, f"{view.name}: unknown fields")
            for button in arch.iter("button"):
                if button.get("type") == "object":
                    self.assertTrue(
                        hasattr(model, button.get("name")),
                        f"{view.name}: no method {button.get('name')}",
                    )


@tagged("post_install", "-at_install")
class TestRecordsShowTheirMoodleState(MoodleCase):
    def test_problem_is_reported_on_the_record_and_roles_looked_up(self):
        from .common import make_institution

        env = self.env(context=dict(self.env.context, connector_no_export=True))
        data = make_institution(env, "S")
        self.instance.department_ids = data["dept"]
        # The instance's role ids are the ones Moodle gets.
        self.instance.write({"student_role_id": 4, "teacher_role_id": 4})
        self.instance._job_push()
        alg = self.fm.find_course(
            idnumber=f"oec_subj_{data['subjects'][0].id}_course_{data['program'].id}"
        )
        for person in (data["ann"], data["teacher"]):
            kind = "student" if person._name == "op.student" else "faculty"
            user = self.fm.find_user(idnumber=f"oec_{kind}_{person.id}")
            self.assertEqual(self.fm.enrolled_roles(alg["id"], user["id"]), {4})
        self.assertEqual(data["ann"].moodle_sync_state, "synced")
        self.assertEqual(data["nomail"].moodle_sync_state, "blocked")
        self.assertIn("email", data["nomail"].moodle_sync_error)
        action = data["nomail"].action_moodle_mappings()
        self.assertEqual(
            self.env["moodle.mapping"].search(action["domain"]).external_key,
            f"oec_student_{data['nomail'].id}",
        )

    def test_role_ids_are_looked_up_from_moodle(self):
        from .common import make_institution

        env = self.env(context=dict(self.env.context, connector_no_export=True))
        data = make_institution(env, "L")
        self.instance.department_ids = data["dept"]
        self.instance._job_push()
        self.instance.write({"student_role_id": 55, "teacher_role_id": 33})
        self.instance.action_test_connection()
        self.assertEqual(
            (self.instance.student_role_id, self.instance.teacher_role_id), (5, 3)
        )

    def test_eight_switchable_crons(self):
        crons = (
            self.env["ir.cron"]
            .with_context(active_test=False)
            .search([("cron_name", "ilike", "Moodle:")])
        )
        self.assertEqual(len(crons), 8)
        self.assertTrue(all(c.active for c in crons))
