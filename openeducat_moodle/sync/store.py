"""The mapping table's interface, and an in-memory implementation.

The Odoo layer implements the same interface over ``moodle.mapping``; the
tests and the benchmark use :class:`MemoryStore`.
"""

import dataclasses


@dataclasses.dataclass
class Mapping:
    """One row of the mapping table (see ``moodle.mapping``)."""

    kind: str
    key: str
    res_model: str
    res_id: int
    moodle_id: int | None = None
    idnumber: str | None = None
    sync_hash: str | None = None
    state: str = "pending"
    retry_count: int = 0
    next_retry: object = None
    last_error: str | None = None
    last_sync: object = None
    extra: dict = dataclasses.field(default_factory=dict)


class Store:
    """What the sync core needs from the mapping table.

    ``load(kind)`` is called once per kind and run: implementations read every
    row of that kind in one query.
    """

    def load(self, kind):  # pragma: no cover - interface
        """Return ``{key: Mapping}`` for every mapping of ``kind``."""
        raise NotImplementedError

    def save(self, mappings):  # pragma: no cover - interface
        """Create or update these mappings (matched on kind and key)."""
        raise NotImplementedError

    def delete(self, mappings):  # pragma: no cover - interface
        """Remove these mappings."""
        raise NotImplementedError


class MemoryStore(Store):
    """The mapping table in a dict, for the tests and the benchmark."""

    def __init__(self):
        self.rows = {}

    def load(self, kind):
        return {
            key: dataclasses.replace(m, extra=dict(m.extra))
            for (k, key), m in self.rows.items()
            if k == kind
        }

    def save(self, mappings):
        for mapping in mappings:
            self.rows[mapping.kind, mapping.key] = dataclasses.replace(
                mapping, extra=dict(mapping.extra)
            )

    def delete(self, mappings):
        for mapping in mappings:
            self.rows.pop((mapping.kind, mapping.key), None)

    def get(self, kind, key):
        return self.rows.get((kind, key))

    def of_kind(self, kind):
        return {key: m for (k, key), m in self.rows.items() if k == kind}
