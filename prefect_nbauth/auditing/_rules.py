"""Every rule of the audit, in the order the report lists their findings.

A rule reads the :class:`~._evidence.Evidence` of one audit and returns one finding (or
None where it does not apply); it never probes. Adding a check is writing one rule and
putting it here (and, if it needs an answer no probe gets yet, one probe in ``_evidence``).
"""

from __future__ import annotations

from . import _auth_mode, _gateway, _rest_rules, _server_version, _transport
from ._evidence import Evidence, Rule
from ._report import Finding
from ._socket_rules import SOCKET_RULES

__all__ = ["RULES", "judge"]

RULES: tuple[Rule, ...] = (
    _transport.transport,
    _transport.tls_verification,
    _auth_mode.advertised_auth,
    _rest_rules.no_credential,
    _rest_rules.wrong_credential,
    _rest_rules.your_credential,
    _gateway.prefect_check,
    _rest_rules.public_endpoints,
    _rest_rules.health_exemption,
    *SOCKET_RULES,
    _transport.redirects,
    _server_version.server_version,
    _server_version.client_server_versions,
)


def judge(seen: Evidence) -> list[Finding]:
    """Every rule's finding, in order, leaving out the rules that do not apply."""
    return [finding for rule in RULES if (finding := rule(seen)) is not None]
