"""Where erasure certificates and DSSE envelopes were: kept for older imports.

Certificates are ``audit.erasure.certificate`` (their shape ``audit.erasure.schema``);
DSSE envelopes are ``audit.dsse``.
"""

from __future__ import annotations

from audit.dsse import PAYLOAD_TYPE, open_envelope, pae, sign_envelope
from audit.erasure.certificate import (
    PREDICATE_TYPE,
    STATEMENT,
    STATEMENT_TYPE,
    CertificateError,
    VerifiedCertificate,
    make_certificate,
    verify_certificate,
)

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT",
    "STATEMENT_TYPE",
    "CertificateError",
    "VerifiedCertificate",
    "make_certificate",
    "open_envelope",
    "pae",
    "sign_envelope",
    "verify_certificate",
]
