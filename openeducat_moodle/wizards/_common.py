from odoo import _


def reopen(wizard):
    """The action that shows ``wizard`` again, with what it just computed."""
    return {
        "type": "ir.actions.act_window",
        "res_model": wizard._name,
        "res_id": wizard.id,
        "view_mode": "form",
        "target": "new",
    }


def job_progress(env, uuid):
    """One line on the job a wizard waits for: its state, and why it waits or
    failed."""
    job = env["queue.job"].sudo().search([("uuid", "=", uuid)], limit=1)
    if not job:
        return _("The job is gone (done and cleaned up, or cancelled).")
    states = dict(job._fields["state"].selection)
    text = _("Job %(name)s: %(state)s", name=job.name, state=states.get(job.state))
    if job.state in ("pending", "enqueued") and job.eta:
        text += " " + _("(not before %s UTC)", job.eta)
    if job.result and job.state != "done":
        text += f"\n{job.result}"
    if job.state == "failed":
        text += f"\n{job.exc_message or ''}"
    return text
