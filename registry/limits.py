"""Widths and bounds every store enforces alike, checked before anything is written.

SQLite does not enforce column widths and PostgreSQL does: checking these first makes
both accept exactly the same input, with a message that names the limit. They follow
the columns of ``registry/store/schema.py``.
"""

#: The largest integer JSON numbers (IEEE doubles) hold exactly: 2**53 - 1.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_PROJECT = 128
MAX_ENTITY = 300
MAX_ACTOR = 300
MAX_TRACE_ID = 64
MAX_ERROR_TYPE = 300
