"""Dataset versions: registering one with its record membership (``Registry.register_dataset``),
or from tabular data whose content is digested (``Registry.dataset_from``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from registry import writes
from registry.errors import FieldError
from registry.ids import dataset_id
from registry.sdk import tables
from registry.sdk.capture import file_digest
from registry.sdk.handles import DatasetVersion, NodeLike, node_of
from registry.sdk.runs import Run
from registry.sdk.session import Session


class Datasets(Session):
    """The dataset calls of a ``Registry``."""

    def register_dataset(
        self,
        name: str,
        version: str | None = None,
        *,
        uri: str,
        digest: str | None = None,
        path: str | Path | None = None,
        schema: Mapping[str, str] | None = None,
        row_count: int | None = None,
        records: Iterable[str | int] | None = None,
        subjects: Iterable[str | int | None] | None = None,
        derived_from: Sequence[NodeLike] = (),
        produced_by: Run | str | None = None,
        tags: Mapping[str, str] | None = None,
        occurred_at: Any = None,
        defer: bool = False,
    ) -> DatasetVersion:
        """Register a dataset version with its record membership.

        ``digest`` (or ``path`` to digest) identifies the content; ``version``
        defaults to the digest's first 12 hex digits. ``records`` are the record
        keys it holds and ``subjects`` each record's data-subject id (or None).
        Registering the same name, version and digest again returns the existing
        version; another digest under the same version is a Conflict. ``defer=True``
        buffers the registration with a run's records, to be appended with the
        connection's next write (one transaction instead of two).
        """
        if digest is None:
            if path is None:
                raise FieldError("digest", f"dataset {name!r}: give digest= or path= to digest")
            digest = file_digest(path)
        version = version or writes.version_of(digest)
        node = dataset_id(self.project, name, version)
        existing = self._registered_records(node, digest)
        if existing is not None:
            return DatasetVersion(node, name, version, digest, existing)
        keys = list(records) if records is not None else []
        body: dict[str, Any] = {
            "name": name,
            "version": version,
            "digest": digest,
            "uri": uri,
            "schema": dict(schema) if schema is not None else None,
            "row_count": row_count,
            "derived_from": [node_of(d) for d in derived_from],
            "produced_by": produced_by.id if isinstance(produced_by, Run) else produced_by,
            "tags": dict(tags or {}),
        }
        subject_list = None if subjects is None else list(subjects)
        items = writes.dataset_items(self, node, body, keys, subject_list, occurred_at)
        count = len(set(keys))
        if defer:
            self._hold_all(items)
            self._datasets[node] = {"digest": digest, "records": count}
        else:
            self._append(items)
        return DatasetVersion(node, name, version, digest, count)

    def dataset_from(
        self,
        data: Any,
        name: str,
        version: str | None = None,
        *,
        key: str | None = None,
        subject: str | None = None,
        uri: str | None = None,
        derived_from: Sequence[NodeLike] = (),
        produced_by: Run | str | None = None,
        tags: Mapping[str, str] | None = None,
        occurred_at: Any = None,
        defer: bool = False,
    ) -> DatasetVersion:
        """Register tabular ``data`` as a dataset version: a pandas DataFrame, a pyarrow
        Table or Dataset, a Hugging Face ``datasets.Dataset`` (its rows in the order it
        presents them, after any ``select``, ``shuffle`` or ``filter``), or the path of a
        Parquet or CSV file or of a directory of Parquet files.

        Its digest is over its content, the same for the same rows wherever they are
        stored (``registry.sdk.tables`` says how); its schema and row count are read from
        it. ``key`` names the column of record keys and ``subject`` the column of each
        record's data-subject id (null or empty: none); both are sealed into pseudonyms, as
        ``register_dataset`` does. ``uri`` is where the data lives: a path's own URI by
        default; data in memory needs one. The other options are ``register_dataset``'s.
        """
        table = tables.table_of(data)
        if uri is None:
            if not isinstance(data, str | Path):
                raise FieldError(
                    "uri", f"dataset {name!r}: data in memory has no location; give uri="
                )
            uri = Path(data).resolve().as_uri()
        if subject is not None and key is None:
            raise FieldError("subject", "subjects belong to records: give key= too")
        records = None if key is None else _keys(tables.column(table, key, "record keys"))
        # A CSV writes a missing subject as an empty value: no subject either.
        subjects = (
            None
            if subject is None
            else [None if v == "" else v for v in tables.column(table, subject, "subjects")]
        )
        return self.register_dataset(
            name,
            version,
            uri=uri,
            digest=tables.content_digest(table),
            schema=tables.schema_of(table),
            row_count=table.num_rows,
            records=records,
            subjects=subjects,
            derived_from=derived_from,
            produced_by=produced_by,
            tags=tags,
            occurred_at=occurred_at,
            defer=defer,
        )

    def _registered_records(self, node: str, digest: str) -> int | None:
        """The record count of ``node`` if it is registered with ``digest``; None if it
        is not registered; Conflict if it is, with another digest."""
        existing = self._dataset_row(node)
        return None if existing is None else writes.same_dataset(node, digest, existing)

    def _dataset_row(self, node: str) -> dict[str, Any] | None:
        # Dataset versions are immutable: once seen, their digest never changes.
        known = self._datasets.get(node)
        if known is not None:
            return known
        found = self.backend.dataset(node)
        if found is not None:
            self._datasets[node] = found
        return found


def _keys(values: list[Any]) -> list[str | int]:
    """Record keys from a column: text or whole numbers, none missing."""
    for row, value in enumerate(values):
        if value is None or not isinstance(value, str | int) or isinstance(value, bool):
            raise FieldError(
                "key", f"row {row}: record key {value!r}; expected text or a whole number"
            )
    return values
