"""Where a self-hosted Prefect server answers ``GET /ui-settings``: the one answer, for
``status()`` (``_probe``) and ``%prefect_audit`` (``auditing._evidence``) alike.

The route is public and says whether the server enforces an auth string. It is served
by the UI app at the server's ROOT, beside ``/api``, not under it (``/api/ui-settings``
answers 401 on an auth-protected server). A server started with
``PREFECT_UI_SERVE_BASE=/prefect`` (the demo behind jupyter-server-proxy, Binder)
serves it at ``/prefect/ui-settings`` instead and answers 404 at the root; the
client's ``PREFECT_UI_URL`` (e.g. ``http://127.0.0.1:8888/prefect``) names that path,
which is then asked on the API's own host, without a credential.

Callers ask the candidates in order and go on to the next only after HTTP 404.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["ui_settings_urls"]


def _at_root(api_url: str) -> str:
    """``http://h:4200/api`` -> ``http://h:4200/ui-settings`` (also under a path prefix)."""
    base = api_url.rstrip("/")
    if base.endswith("/api"):
        base = base[: -len("/api")]
    return f"{base}/ui-settings"


def _under_ui_path(api_url: str) -> str | None:
    try:
        from ._prefect_seam import active_settings_context

        ui_url = active_settings_context().settings.ui_url
    except Exception:  # noqa: BLE001 - a settings problem must not break a probe
        return None
    path = urlsplit(str(ui_url or "")).path.rstrip("/")
    if not path:
        return None
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}{path}/ui-settings"


def ui_settings_urls(api_url: str) -> list[str]:
    """Where to ask ``GET /ui-settings`` for the server of ``api_url``, in order (no duplicates)."""
    urls = [_at_root(api_url)]
    under = _under_ui_path(api_url)
    if under is not None and under not in urls:
        urls.append(under)
    return urls
