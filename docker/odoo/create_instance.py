"""One-shot step of the compose stack: wire Odoo to the Moodle next to it.

Over XML-RPC, as Odoo's admin user:

1. log in with ``ODOO_ADMIN_PASSWORD`` (``odoo-init`` set it on the new
   database; this step never changes it);
2. create the ``moodle.instance`` for ``MOODLE_INTERNAL_URL`` with the token in
   ``MOODLE_SYNC_TOKEN``, or update the one that has that URL;
3. test the connection (``action_test_connection``) and, when
   ``ODOO_FIRST_PUSH`` is true and the instance is new or has never synced
   (no ``last_sync_date``), enqueue a first full push. Later pushes are the
   connector's business (on save, and the hourly full push).

Idempotent: running it again updates the same instance. Never prints the
token or the password. Exit code 0 on success, 1 when a step failed.
"""

import os
import sys
import time
import urllib.request
import xmlrpc.client

TRUE = {"1", "true", "yes"}


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"create_instance: {name} is not set")
    return value


def wait_for(url, seconds):
    """Poll ``url`` until it answers 200 or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"create_instance: {url} did not answer in {seconds} s")
        time.sleep(3)


def login(url, db, password):
    """Return the admin uid; exit with the remedy when the password is refused."""
    common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common", allow_none=True)
    uid = common.authenticate(db, "admin", password, {})
    if not uid:
        sys.exit(
            f"create_instance: Odoo's admin refuses ODOO_ADMIN_PASSWORD (database "
            f"{db}). odoo-init sets that password only while admin still has the "
            "default one; if it was changed in Odoo since, put the current one in "
            ".env as ODOO_ADMIN_PASSWORD and run `docker compose up -d` again. "
            "Odoo and Moodle run all the same; only this step was skipped."
        )
    return uid


def main():
    url = env("ODOO_URL", "http://odoo:8069").rstrip("/")
    db = env("ODOO_DB_NAME", "oec")
    password = env("ODOO_ADMIN_PASSWORD")
    moodle_url = env("MOODLE_INTERNAL_URL", "http://moodle").rstrip("/")
    token = env("MOODLE_SYNC_TOKEN")
    name = env("MOODLE_INSTANCE_NAME", "Moodle")
    first_push = env("ODOO_FIRST_PUSH", "true").lower() in TRUE

    wait_for(f"{url}/web/health", 300)
    uid = login(url, db, password)
    models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def call(model, method, *args, **kwargs):
        return models.execute_kw(db, uid, password, model, method, list(args), kwargs)

    values = {"name": name, "base_url": moodle_url, "token": token}
    if moodle_url.startswith("http://"):
        # The compose network is private to this stack: the connector refuses
        # http:// elsewhere unless the instance says so, visibly.
        values["allow_insecure_http"] = True
    found = call(
        "moodle.instance",
        "search",
        [("base_url", "=", moodle_url)],
        context={"active_test": False},
        limit=1,
    )
    if found:
        instance_id = found[0]
        call("moodle.instance", "write", [instance_id], {**values, "active": True})
        print(f"create_instance: updated Moodle instance {instance_id} ({moodle_url})")
    else:
        instance_id = call("moodle.instance", "create", values)
        print(f"create_instance: created Moodle instance {instance_id} ({moodle_url})")
    [synced] = call("moodle.instance", "read", [instance_id], ["last_sync_date"])

    result = call("moodle.instance", "action_test_connection", [instance_id])
    params = (result or {}).get("params", {})
    title, message = params.get("title"), params.get("message")
    print(f"create_instance: test connection: {title}: {message}")
    [state] = call("moodle.instance", "read", [instance_id], ["health_state"])
    if state["health_state"] != "ok":
        return 1
    if not first_push:
        print("create_instance: no first push (ODOO_FIRST_PUSH is not true)")
    elif synced["last_sync_date"]:
        print(
            "create_instance: no first push: the instance last synced at "
            f"{synced['last_sync_date']} UTC (the hourly push keeps it in step)"
        )
    else:
        call("moodle.instance", "action_push_now", [instance_id])
        print("create_instance: first full push enqueued (channel root.moodle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
