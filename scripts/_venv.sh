# Sourced by scripts/demo and scripts/test (bash). Needs only python3 (3.10+).
#
#   ensure_venv EXTRA   create $ROOT/.venv if missing, then `pip install -e ".[EXTRA]"`
#
# The install is skipped when it was already done for the same pyproject.toml
# (a stamp file in .venv records its hash), so the second run starts at once.
# On Debian/Ubuntu, `python3 -m venv` needs the python3-venv package; when run
# as root with apt-get available, it is installed automatically.

_venv_say() { echo "[${SCRIPT_NAME:-setup}] $*" >&2; }

_venv_create() {
    local py="$1"
    "$py" -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        _venv_say "python3 -m venv failed (no ensurepip); installing Debian's python3-venv ..."
        if DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; then
            "$py" -m venv --clear "$ROOT/.venv" && return 0
        fi
    fi
    _venv_say "could not create $ROOT/.venv with pip in it. On Debian/Ubuntu: apt-get install python3-venv"
    return 1
}

ensure_venv() {
    local extra="$1"
    local py="${PYTHON:-python3}"
    local vpy="$ROOT/.venv/bin/python"

    if [ -x "$vpy" ] && ! "$vpy" -m pip --version >/dev/null 2>&1; then
        # A venv without pip (made by uv, or half-made when ensurepip was missing).
        "$vpy" -m ensurepip -q >/dev/null 2>&1 || true
    fi
    if [ ! -x "$vpy" ] || ! "$vpy" -m pip --version >/dev/null 2>&1; then
        if ! command -v "$py" >/dev/null 2>&1; then
            _venv_say "needs python3 (3.10 or newer) on PATH, or PYTHON=/path/to/python3."
            return 1
        fi
        if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
            _venv_say "$("$py" --version 2>&1) is too old: prefect-nbauth needs Python 3.10 or newer (set PYTHON=...)."
            return 1
        fi
        _venv_say "creating $ROOT/.venv with $("$py" --version 2>&1) ..."
        _venv_create "$py" || return 1
    fi

    local stamp="$ROOT/.venv/.prefect-nbauth-$extra.installed"
    local want
    want="$("$vpy" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$ROOT/pyproject.toml")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$vpy" -c 'import prefect_nbauth' >/dev/null 2>&1; then
        return 0
    fi
    _venv_say "installing prefect-nbauth[$extra] into .venv (the first time takes a few minutes) ..."
    PIP_DISABLE_PIP_VERSION_CHECK=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        "$vpy" -m pip install -q -e "$ROOT[$extra]" || return 1
    echo "$want" >"$stamp"
}
