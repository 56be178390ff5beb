"""Constants shared by the test-suite (importable from tests and from conftest)."""

import os

# An auth string with every ASCII character that tends to break naive parsing:
# "@" and ":" (URL userinfo / user:password split), "#" (URL fragment), "%" (percent
# escapes), "&" (query separator), "!" (shell history). Prefect never splits it.
AUTH_STRING = "admin@corp:p@ss:w#rd%&!"

# This user's download cache, for tests that give a subprocess a fresh HOME (to keep the
# person's Prefect profiles out): the demo's oidc-provider (npm) is installed once there,
# not once per fresh HOME.
USER_CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
