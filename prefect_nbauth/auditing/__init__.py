"""The audit: what the Prefect API in force really enforces (``prefect_nbauth.audit()``).

The package is ``auditing`` (not ``audit``) so that ``prefect_nbauth.audit`` stays the
function users call.
"""

from __future__ import annotations

from ._audit import AuditReport, Finding, Outcome, audit

__all__ = ["AuditReport", "Finding", "Outcome", "audit"]
