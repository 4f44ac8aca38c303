def reopen(wizard):
    """The action that shows ``wizard`` again, with what it just computed."""
    return {
        "type": "ir.actions.act_window",
        "res_model": wizard._name,
        "res_id": wizard.id,
        "view_mode": "form",
        "target": "new",
    }
