"""Reports a person reads: the model dossier (``model``) and the subject-access report
(``subject``), each a self-contained HTML page (and Markdown or JSON beside it)."""

from audit.reports.model import ModelDossier, build_model_dossier

__all__ = ["ModelDossier", "build_model_dossier"]
