"""What :func:`audit` reports: each probe's :class:`Finding` and the :class:`AuditReport`.

The report holds no secret, only outcomes and sentences, so it is safe to print, log,
display (plain text, IPython pretty-print, HTML) and save (:meth:`AuditReport.to_dict`).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .._redaction import scrub_fields

__all__ = ["AuditReport", "Finding", "Outcome"]


class Outcome(str, Enum):
    """What one check of the audit found: ``PASS`` (the server refuses what it should),
    ``FAIL`` (it lets through what it should refuse; the finding says what to change) or
    ``NOT_APPLICABLE`` (the check could not run here, with the reason)."""

    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """One probe's result: ``detail`` says what was seen, ``fix`` what to do (empty on a pass)."""

    check: str  # a stable id, e.g. "rest-wrong-credential", "socket-events-in-no-auth"
    title: str
    outcome: Outcome
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        scrub_fields(self)  # a detail quotes what the server answered


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` found. Holds no secret: only outcomes and sentences."""

    api_url: str
    client_sends: str  # what this process sends, in words ("an auth string (HTTP Basic)")
    server_version: str | None
    server_auth: str | None  # what /ui-settings advertises: "BASIC", "none" or None (unknown)
    findings: tuple[Finding, ...]
    seconds: float
    credential_used: bool = field(default=True)  # False: api_url was not the configured one

    def __post_init__(self) -> None:
        scrub_fields(self)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.outcome is Outcome.FAIL)

    def finding(self, check: str) -> Finding:
        for f in self.findings:
            if f.check == check:
                return f
        raise KeyError(check)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [{**asdict(f), "outcome": f.outcome.value} for f in self.findings]
        return data

    def _summary(self) -> str:
        counts = {o: sum(f.outcome is o for f in self.findings) for o in Outcome}
        return (f"{counts[Outcome.FAIL]} failed, {counts[Outcome.PASS]} passed, "
                f"{counts[Outcome.NOT_APPLICABLE]} not applicable ({self.seconds:.1f} s)")

    def _server_line(self) -> str:
        version = f"Prefect {self.server_version}" if self.server_version else "version unknown"
        advertised = {"BASIC": "advertises an auth string (BASIC)", "none": "advertises no auth",
                      None: "does not say which auth it wants"}[self.server_auth]
        note = "" if self.credential_used else " (not the configured API: your credential was not sent)"
        return f"server: {version}, {advertised}; this process sends {self.client_sends}{note}"

    def __str__(self) -> str:
        lines = [f"Prefect auth audit of {self.api_url}: {self._summary()}",
                 f"  {self._server_line()}"]
        order = {Outcome.FAIL: 0, Outcome.PASS: 1, Outcome.NOT_APPLICABLE: 2}
        for f in sorted(self.findings, key=lambda f: order[f.outcome]):
            lines.append(f"  {f.outcome.value.upper():4}  {f.title}: {f.detail}")
            if f.fix:
                lines.append(f"        fix: {f.fix}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        style = {Outcome.FAIL: ("&#x2718; fail", "#b00020"), Outcome.PASS: ("&#x2714; pass", "#1b5e20"),
                 Outcome.NOT_APPLICABLE: ("&ndash; n/a", "#666")}
        rows = []
        for f in self.findings:
            label, colour = style[f.outcome]
            rows.append(
                f"<tr><td style='color:{colour};white-space:nowrap;font-weight:bold'>{label}</td>"
                f"<td style='text-align:left'>{html.escape(f.title)}</td>"
                f"<td style='text-align:left'>{html.escape(f.detail)}</td>"
                f"<td style='text-align:left'>{html.escape(f.fix)}</td></tr>"
            )
        return (
            f"<div class='prefect-nbauth-audit'><p><b>Prefect auth audit of "
            f"{html.escape(self.api_url)}</b>: {html.escape(self._summary())}<br>"
            f"{html.escape(self._server_line())}</p>"
            "<table><thead><tr><th>result</th><th style='text-align:left'>check</th>"
            "<th style='text-align:left'>finding</th><th style='text-align:left'>fix</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
