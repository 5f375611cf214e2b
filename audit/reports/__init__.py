"""Reports a person reads: the model dossier (``model``) and the subject-access report
(``subject``), each a self-contained HTML page (and Markdown or JSON beside it).

The names below are read from their modules when first used (PEP 562): importing one
report does not load the other, nor the templates, before it is asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_attributes

if TYPE_CHECKING:
    from audit.reports.model import ModelDossier, build_model_dossier

__getattr__ = lazy_attributes(
    "audit.reports",
    {"ModelDossier": "audit.reports.model", "build_model_dossier": "audit.reports.model"},
    globals(),
)

__all__ = ["ModelDossier", "build_model_dossier"]
