"""Constants shared by the test-suite (importable from tests and from conftest)."""

# An auth string with every ASCII character that tends to break naive parsing:
# "@" and ":" (URL userinfo / user:password split), "#" (URL fragment), "%" (percent
# escapes), "&" (query separator), "!" (shell history). Prefect never splits it.
AUTH_STRING = "admin@corp:p@ss:w#rd%&!"
