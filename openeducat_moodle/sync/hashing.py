"""SHA-256 of a canonical form of a payload: equal payloads, equal hashes."""

import hashlib
import json


def canonical(payload):
    """Return the canonical JSON text of a payload (sorted keys, no spaces)."""
    return json.dumps(
        payload,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def payload_hash(payload):
    """Return the hex SHA-256 of the payload's canonical form."""
    return hashlib.sha256(canonical(payload).encode("utf-8")).hexdigest()
