"""Where erasure certificates and DSSE envelopes were: kept for older imports.

Certificates are ``audit.erasure.certificate`` (their shape ``audit.erasure.schema``);
DSSE envelopes are ``audit.dsse``.
"""

from __future__ import annotations

from audit.erasure.certificate import *  # noqa: F403
from audit.erasure.certificate import __all__ as __all__
