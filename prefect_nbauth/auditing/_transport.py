"""Rules on where the credential travels: plain http, TLS verification, redirects elsewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

from .._inputs import plain_http_warning
from ._evidence import Evidence
from ._report import Finding, Outcome

__all__ = ["kernel_channels", "redirects", "tls_verification", "transport"]


def transport(seen: Evidence) -> Finding:
    url = seen.prober.api_url
    host = urlsplit(url).hostname
    if plain_http_warning(url):
        return Finding("transport", "Transport", Outcome.FAIL,
                       f"Credentials go over plain http to {host}, which is not this machine: "
                       "anyone on the network path can read them.",
                       "Put the server behind https (a reverse proxy with a certificate) and "
                       "use the https:// URL.")
    if url.startswith("https"):
        return Finding("transport", "Transport", Outcome.PASS, "The API is reached over https.")
    return Finding("transport", "Transport", Outcome.PASS,
                   f"Plain http, but to {host}, this machine: nothing crosses a network.")


def tls_verification(seen: Evidence) -> Finding:
    skip = bool(seen.settings.api.tls_insecure_skip_verify)
    if not seen.prober.api_url.startswith("https"):
        return Finding(
            "tls-verification", "TLS verification",
            Outcome.FAIL if skip else Outcome.NOT_APPLICABLE,
            "PREFECT_API_TLS_INSECURE_SKIP_VERIFY is on (no effect over http, but it will be "
            "over https)." if skip else "The API is plain http: there is no TLS to verify.",
            "Unset PREFECT_API_TLS_INSECURE_SKIP_VERIFY." if skip else "")
    if skip:
        return Finding("tls-verification", "TLS verification", Outcome.FAIL,
                       "PREFECT_API_TLS_INSECURE_SKIP_VERIFY is on: anyone who can intercept "
                       "the connection can pose as the server and read the credential.",
                       "Unset it and point PREFECT_API_SSL_CERT_FILE at your CA bundle.")
    return Finding("tls-verification", "TLS verification", Outcome.PASS,
                   "Certificates are verified.")


def redirects(seen: Evidence) -> Finding:
    title = "Redirects to another host"
    if seen.prober.redirects:
        found = "; ".join(f"{what} -> {where}" for what, where in dict.fromkeys(seen.prober.redirects))
        return Finding("redirects", title, Outcome.FAIL,
                       f"The API redirects to another origin ({found}). Prefect's own clients "
                       "follow redirects: they drop the Authorization header but keep gateway "
                       "headers, and its event sockets send the raw token in their first "
                       "message to the new host.",
                       "Use the final URL as the API URL (often https:// instead of http://), and "
                       "make the proxy answer API paths itself instead of redirecting.")
    return Finding("redirects", title, Outcome.PASS,
                   "No probe was redirected to another origin.")


def kernel_channels(seen: Evidence) -> Finding | None:
    """Whether other users of this host can read this kernel's output (not a probe: the host)."""
    from .._kernel_channels import exposure, kernel_transport

    if kernel_transport() is None:
        return None  # not a kernel
    warning = exposure()
    title = "This kernel's channels"
    if warning is not None:
        return Finding("kernel-channels", title, Outcome.FAIL, warning.split(" Run kernels")[0],
                       "Run kernels over IPC: " + warning.split("Run kernels over IPC: ")[1])
    return Finding("kernel-channels", title, Outcome.PASS,
                   "Only this account can reach this kernel's channels (IPC sockets, or no other "
                   "accounts on this machine).")
