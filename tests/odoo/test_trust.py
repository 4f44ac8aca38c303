"""Trust (issue 14): the token and the instance, and who may do what."""

import inspect
import json
import secrets
import xmlrpc.client

from werkzeug.test import Client

import odoo
from odoo import SUPERUSER_ID, api, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import BASE_URL, InstitutionCase, MoodleCase


@tagged("post_install", "-at_install")
class TestInstanceUrl(MoodleCase):
    def create(self, url, **values):
        return self.env["moodle.instance"].create(
            {"name": "Another", "base_url": url, "token": "t", **values}
        )

    def test_http_needs_loopback_or_an_explicit_switch(self):
        with self.assertRaises(ValidationError):
            self.create("http://lms.example.edu")
        insecure = self.create("http://moodle", allow_insecure_http=True)
        self.assertTrue(insecure.allow_insecure_http)
        for url in ("http://127.0.0.1:8045", "http://localhost:8080", "http://[::1]"):
            self.create(url)
        with self.assertRaises(ValidationError):
            insecure.allow_insecure_http = False
        arch = insecure.get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("unencrypted", arch)

    def test_another_host_clears_the_token(self):
        self.assertTrue(self.instance.token_set)
        self.instance.base_url = BASE_URL + "/"  # same host: kept
        self.assertTrue(self.instance.token_set)
        self.instance.base_url = "https://evil.example.org"
        self.assertFalse(self.instance.token_set)
        with self.assertRaises(UserError):
            self.instance._get_client()
        self.assertIn("token was cleared", self.instance.message_ids[:1].body)
        # A new token given with the new URL is kept.
        self.instance.write({"base_url": "https://lms.test", "token": "new-one"})
        self.assertTrue(self.instance.token_set)
        self.assertEqual(self.instance._get_client()._MoodleClient__token, "new-one")


@tagged("post_install", "-at_install")
class TestTokenIsWriteOnly(MoodleCase):
    """Over the real HTTP stack (XML-RPC and JSON-RPC), as a Moodle Manager
    and as the administrator: the token is never read back."""

    def setUp(self):
        super().setUp()
        self.secret = "tok" + secrets.token_hex(16)
        self.password = "Pw-" + secrets.token_hex(8)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            manager = new_test_user(
                env,
                login="moodle-mgr-" + secrets.token_hex(4),
                password=self.password,
                groups="base.group_user,base.group_allow_export,"
                "openeducat_moodle.group_moodle_manager",
            )
            instance = env["moodle.instance"].create(
                {"name": "Secret", "base_url": BASE_URL, "token": self.secret}
            )
            self.ids = (manager.id, instance.id)
            self.login = manager.login
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["moodle.instance"].browse(self.ids[1]).unlink()
            env["res.users"].browse(self.ids[0]).unlink()

    def test_not_over_xmlrpc(self):
        uid, instance_id = self.ids
        db = self.env.cr.dbname
        app = http_client()
        calls = [
            ("read", [[instance_id]], {"fields": ["token", "token_set"]}),
            ("read", [[instance_id]], {}),
            ("search_read", [[("id", "=", instance_id)]], {}),
            ("web_read", [[instance_id]], {"specification": {"token": {}}}),
        ]
        for method, args, kwargs in calls:
            body = xmlrpc.client.dumps(
                (db, uid, self.password, "moodle.instance", method, args, kwargs),
                "execute_kw",
                allow_none=True,
            )
            answer = app.post(
                "/xmlrpc/2/object", data=body, content_type="text/xml"
            ).get_data(as_text=True)
            self.assertNotIn("Fault", answer.split("<params>")[0], answer[:500])
            self.assertNotIn(self.secret, answer, method)
        # What it says is whether one is set.
        [rows], _method = xmlrpc.client.loads(
            answer_of(app, db, uid, self.password, instance_id)
        )
        self.assertEqual(rows, [{"id": instance_id, "token_set": True}])

    def test_not_over_jsonrpc(self):
        uid, instance_id = self.ids
        app = http_client()
        login = app.post(
            "/web/session/authenticate",
            json={
                "jsonrpc": "2.0",
                "params": {
                    "db": self.env.cr.dbname,
                    "login": self.login,
                    "password": self.password,
                },
            },
        )
        self.assertEqual(
            login.json.get("result", login.json).get("uid"), uid, login.json
        )
        for method, args, kwargs in [
            ("read", [[instance_id], ["token"]], {}),
            ("web_read", [[instance_id]], {"specification": {"token": {}}}),
            ("web_search_read", [[]], {"specification": {"token": {}}}),
            ("export_data", [[instance_id], ["name"]], {}),
        ]:
            answer = app.post(
                f"/web/dataset/call_kw/moodle.instance/{method}",
                json={
                    "jsonrpc": "2.0",
                    "params": {
                        "model": "moodle.instance",
                        "method": method,
                        "args": args,
                        "kwargs": kwargs,
                    },
                },
            ).get_data(as_text=True)
            self.assertNotIn("error", json.loads(answer), answer[:300])
            self.assertNotIn(self.secret, answer, method)
        # Exporting it is refused outright.
        answer = app.post(
            "/web/dataset/call_kw/moodle.instance/export_data",
            json={
                "jsonrpc": "2.0",
                "params": {
                    "model": "moodle.instance",
                    "method": "export_data",
                    "args": [[instance_id], ["name", "token"]],
                    "kwargs": {},
                },
            },
        ).get_data(as_text=True)
        self.assertIn("cannot be exported", answer)
        self.assertNotIn(self.secret, answer)
        # Searching on it would be a way to guess it: refused.
        answer = app.post(
            "/web/dataset/call_kw/moodle.instance/search",
            json={
                "jsonrpc": "2.0",
                "params": {
                    "model": "moodle.instance",
                    "method": "search",
                    "args": [[("token", "=", self.secret)]],
                    "kwargs": {},
                },
            },
        ).json
        self.assertIn("error", answer)

    def test_the_job_still_reads_it(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            client = env["moodle.instance"].browse(self.ids[1])._get_client()
            self.assertEqual(client._MoodleClient__token, self.secret)
            self.assertNotIn(self.secret, repr(client))


class LoopbackClient(Client):
    """Requests from 127.0.0.1 (Odoo's login records the address)."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("environ_base", {"REMOTE_ADDR": "127.0.0.1"})
        return super().open(*args, **kwargs)


def http_client():
    """Odoo's own WSGI application, driven without a server: the requests go
    through the whole HTTP stack (routing, sessions, XML-RPC, JSON-RPC)."""
    return LoopbackClient(odoo.http.root, use_cookies=True)


def answer_of(app, db, uid, password, instance_id):
    body = xmlrpc.client.dumps(
        (
            db,
            uid,
            password,
            "moodle.instance",
            "read",
            [[instance_id]],
            {"fields": ["token_set"]},
        ),
        "execute_kw",
    )
    return app.post("/xmlrpc/2/object", data=body, content_type="text/xml").get_data(
        as_text=True
    )


@tagged("post_install", "-at_install")
class TestEveryPublicMethodChecksTheGroup(InstitutionCase):
    suffix = "P"

    def records(self):
        """One record of every model this addon defines or extends."""
        env, d = self.env, self.data
        self.instance._job_push()
        wizard = env["moodle.sync.wizard"].create(
            {"instance_ids": [(6, 0, self.instance.ids)]}
        )
        found = {
            "moodle.instance": self.instance,
            "moodle.mapping": env["moodle.mapping"].search([], limit=1),
            "moodle.sync.run": env["moodle.sync.run"].search([], limit=1),
            "moodle.sync.wizard": wizard,
            "moodle.import.wizard": env["moodle.import.wizard"].create(
                {"instance_id": self.instance.id}
            ),
            "moodle.grade.scale.line": env["moodle.grade.scale.line"].create(
                {
                    "instance_id": self.instance.id,
                    "letter": "A",
                    "min_percent": 90,
                    "max_percent": 100,
                }
            ),
            "op.department": d["dept"],
            "op.course": d["program"],
            "op.subject": d["subjects"][:1],
            "op.batch": d["batch"],
            "op.student": d["ann"],
            "op.faculty": d["teacher"],
            "op.student.course": d["enrolments"][:1],
        }
        for name in self.env.registry:
            model = self.env[name]
            if name in found or model._abstract or not self.ours(type(model)):
                continue
            found[name] = model.search([], limit=1)
        return found

    @staticmethod
    def ours(model_class):
        return any(
            c.__module__.startswith("odoo.addons.openeducat_moodle")
            for c in model_class.mro()
        )

    def public_methods(self, model):
        names = set()
        for cls in type(model).mro():
            if not cls.__module__.startswith("odoo.addons.openeducat_moodle"):
                continue
            for name, member in vars(cls).items():
                if (
                    callable(member)
                    and not name.startswith("_")
                    and name != "init"
                    and not hasattr(models.BaseModel, name)
                ):
                    names.add(name)
        return sorted(names)

    def test_a_plain_internal_user_is_refused_everywhere(self):
        user = new_test_user(self.env, login="plain-p", groups="base.group_user")
        walked = []
        for name, record in self.records().items():
            methods = self.public_methods(record)
            if methods:
                self.assertTrue(record, f"no {name} record to call on")
            for method in methods:
                bound = getattr(record.with_user(user), method)
                required = [
                    p
                    for p in inspect.signature(bound).parameters.values()
                    if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
                ]
                refused = self.assertRaises(AccessError)
                with self.subTest(model=name, method=method), refused:
                    bound(*[None] * len(required))
                walked.append(f"{name}.{method}")
        # The walk found the buttons it is there to check.
        for expected in (
            "moodle.instance.action_push_now",
            "moodle.instance.action_retry_failed",
            "moodle.instance.action_open_runs",
            "moodle.mapping.action_retry",
            "moodle.sync.wizard.action_refresh",
            "op.student.course.action_moodle_unenrol",
            "op.student.action_moodle_mappings",
        ):
            self.assertIn(expected, walked)
