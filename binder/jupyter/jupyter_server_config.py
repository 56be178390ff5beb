# The Prefect UI of the demo server, through Jupyter (jupyter-server-proxy).
#
# binder/start puts this directory on JUPYTER_CONFIG_PATH when Jupyter runs under a
# base URL (Binder/JupyterHub: JUPYTERHUB_SERVICE_PREFIX=/user/NAME/), and starts the
# Prefect server with
#     PREFECT_UI_SERVE_BASE = {base}prefect           (the UI's own path)
#     PREFECT_UI_API_URL    = {base}prefect-api/api   (where the UI calls the API)
# Two named proxies then make both reachable for whoever is logged in to Jupyter:
#   {base}prefect/      -> http://127.0.0.1:PORT{base}prefect/   (absolute_url: the UI
#                          is served under that very path, its asset links include it)
#   {base}prefect-api/  -> http://127.0.0.1:PORT/                (prefix stripped: the
#                          REST API stays at /api, as the notebooks use it)
# Both add "Authorization: Basic ..." for the demo's auth string, which the Jupyter
# server has in its environment (binder/start gave it), so the browser never gets
# the secret; and /ui-settings is answered with "auth": null, so the UI does not
# show its login page (it would ask for a password the user has never seen).
# Only the demo server, on 127.0.0.1, is proxied this way; jupyter-server-proxy
# lets only users authenticated to this Jupyter server through.
import base64
import gzip
import json
import os

_base = os.environ.get("PREFECT_NBAUTH_DEMO_UI_PROXY_BASE")
_port = os.environ.get("PREFECT_NBAUTH_DEMO_PORT")
_auth = os.environ.get("PREFECT_NBAUTH_DEMO_AUTH_STRING")

if _base and _port and _port.isdigit() and _auth:
    _basic = "Basic " + base64.b64encode(_auth.encode("utf-8")).decode("ascii")
    del _auth

    def _credential():
        # A callable, so the value is not a template ({port} etc. are not expanded in it).
        return {"Authorization": _basic}

    def _no_login_page(response, path):
        if not (path.rstrip("/").endswith("/ui-settings") and response.code == 200):
            return
        body = response.body
        try:
            if response.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)  # Prefect's UI app gzips even small answers
            settings = json.loads(body)
        except (OSError, ValueError):
            return
        if isinstance(settings, dict) and settings.get("auth"):
            settings["auth"] = None
            response.body = json.dumps(settings).encode("utf-8")
            response.headers.pop("Content-Encoding", None)
            response.headers.pop("Etag", None)

    c.ServerProxy.servers = {  # noqa: F821 - `c` is the config object Jupyter provides
        "prefect": {
            "port": int(_port),
            "absolute_url": True,
            "request_headers_override": _credential,
            "rewrite_response": _no_login_page,
            "launcher_entry": {"enabled": True, "title": "Prefect UI"},
            "new_browser_tab": True,
        },
        "prefect-api": {
            "port": int(_port),
            "absolute_url": False,
            "request_headers_override": _credential,
            "launcher_entry": {"enabled": False},
        },
    }
