"""The audit: what the Prefect API in force really enforces (``prefect_nbauth.audit()``).

The package is ``auditing`` (not ``audit``) so that ``prefect_nbauth.audit`` stays the
function users call. Inside: ``_audit`` (the function), ``_prober`` (one request or socket),
``_evidence`` (every probe, run at once), the rules by what they look at (``_transport``,
``_auth_mode``, ``_rest_rules``, ``_gateway``, ``_socket_rules``, ``_server_version``), listed in report
order in ``_rules``, and ``_report`` (the finding and report types).
"""

from __future__ import annotations

from ._audit import audit
from ._report import AuditReport, Finding, Outcome

__all__ = ["AuditReport", "Finding", "Outcome", "audit"]
