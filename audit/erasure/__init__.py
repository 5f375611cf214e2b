"""Erasure of a data subject (GDPR Art. 17): plan, execute, resume, purge, certify.

An erasure runs in two transactions:

1. ``subject-erasure-requested`` is appended, and the subject's pseudonym is put
   in ``erasure_requests`` beside it: the request is durable and can be resumed.
2. Under the append lock, in one transaction: the cascade is planned from the
   projections (the subject's records, the dataset versions holding them and
   everything downstream: runs, model versions, deployments, predictions); each
   event that holds the subject's pseudonyms is checked against its leaf hash and
   rewritten without them (``redactions``: it keeps its leaf hash, so every
   checkpoint and proof stands); the subject's vault entries and data key are
   deleted; their records and predictions leave the indexes; the request row is
   deleted; and ``subject-erased`` is appended, declaring what was rewritten and
   flagging each affected model version with its remediation status.

A crash leaves either no request, a request (resumed by the next ``erase`` or by
``mlledger erase --resume``), or a completed erasure: never half of one. The
physical purge and the certificate follow the commit. Pseudonyms never leave this
package in a result: the subject and their records are named by their erasure
references.

Modules: ``plan`` (what an erasure will touch), ``execute`` (doing it, and what
follows the commit), ``status`` (erasures, flags and erased keys as recorded),
``rules`` (the remediation rule ``registry.assembly`` composes the ledger with),
``purge`` (the physical purge), ``certificate`` (making and verifying certificates)
and ``schema`` (the certificate's wire shape and JSON Schema). DSSE envelopes are
``audit.dsse``.

The names below are read from their modules when first used (PEP 562), so that
composing a ledger with the remediation rule loads neither the certificates nor
the purge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_attributes

if TYPE_CHECKING:
    from audit.erasure.execute import (
        Outcome,
        certify,
        checkpoint,
        complete,
        erase,
        erase_many,
        finish,
        request,
        signing_key,
    )
    from audit.erasure.plan import (
        CHUNK,
        DEFAULT_STATUS,
        RETAINED,
        Plan,
        Retain,
        flags,
        make_plan,
    )
    from audit.erasure.rules import check_remediation
    from audit.erasure.status import erased_keys, erasures, pending_erasures, remediations

# Names loaded on first use, and the module that defines each.
_LAZY = {
    **dict.fromkeys(
        (
            "Outcome",
            "certify",
            "checkpoint",
            "complete",
            "erase",
            "erase_many",
            "finish",
            "request",
            "signing_key",
        ),
        "audit.erasure.execute",
    ),
    **dict.fromkeys(
        ("CHUNK", "DEFAULT_STATUS", "RETAINED", "Plan", "Retain", "flags", "make_plan"),
        "audit.erasure.plan",
    ),
    "check_remediation": "audit.erasure.rules",
    **dict.fromkeys(
        ("erased_keys", "erasures", "pending_erasures", "remediations"), "audit.erasure.status"
    ),
}

__getattr__ = lazy_attributes("audit.erasure", _LAZY, globals())

__all__ = [
    "CHUNK",
    "DEFAULT_STATUS",
    "RETAINED",
    "Outcome",
    "Plan",
    "Retain",
    "certify",
    "check_remediation",
    "checkpoint",
    "complete",
    "erase",
    "erase_many",
    "erased_keys",
    "erasures",
    "finish",
    "flags",
    "make_plan",
    "pending_erasures",
    "remediations",
    "request",
    "signing_key",
]
