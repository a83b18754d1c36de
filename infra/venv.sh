# Sourced by the infra/ scripts: one Python virtualenv per tool set, created and filled
# from a pinned requirements file, and only re-installed when that file changes.
# The caller defines `log` and `die`, and may set PYTHON (default python3).

# ensure_venv VENV REQUIREMENTS WITNESS
#   Creates VENV (replacing a broken one) and installs REQUIREMENTS into it unless the
#   stamp says they are already in and WITNESS (an executable the requirements provide)
#   exists. Returns 0 when it installed, 1 when everything was up to date.
ensure_venv() {
    local venv="$1" requirements="$2" witness="$3"
    local python="${PYTHON:-python3}" stamp="$venv/.chaoslingr-requirements.sha256"
    local name="${venv#"$INFRA_DIR"/}" req_name="${requirements#"$INFRA_DIR"/}"
    command -v "$python" >/dev/null 2>&1 || die "$python not found; Python 3.9 or newer with the venv module is required"
    [[ -f "$requirements" ]] || die "missing $requirements"
    if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; }; then
        rm -rf "$venv"
        "$python" -m venv "$venv" || die "could not create $venv (on Debian/Ubuntu: apt-get install python3-venv)"
        log "created infra/$name"
    fi
    local want have=""
    want="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"
    [[ -f "$stamp" ]] && have="$(cat "$stamp")"
    if [[ "$want" == "$have" && -x "$witness" ]]; then
        log "up to date (infra/$name matches infra/$req_name)"
        return 1
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
        die "pip install -r infra/$req_name failed (see above)"
    [[ -x "$witness" ]] || die "$witness is missing after installing infra/$req_name"
    printf '%s\n' "$want" >"$stamp"
}
