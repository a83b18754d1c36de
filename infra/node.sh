# Sourced by the infra/ scripts: one node_modules folder per tool, installed with `npm ci`
# from a pinned package-lock.json, and only re-installed when that lock file changes.
# The caller defines `log` and `die`, and may set NODE (default node) and NPM (default npm).

# ensure_node_modules SOURCE NODE_DIR WITNESS
#   Copies SOURCE/package.json and SOURCE/package-lock.json into NODE_DIR and runs
#   `npm ci` there (no install scripts), unless the stamp says that lock is already in and
#   WITNESS (a file the lock provides) exists. Needs Node.js 20 or newer. Prints the
#   version of the package WITNESS belongs to when it installed.
ensure_node_modules() {
    local source="$1" node_dir="$2" witness="$3"
    local node="${NODE:-node}" npm="${NPM:-npm}" stamp="$node_dir/.chaoslingr-lock.sha256"
    local name="${node_dir#"$INFRA_DIR"/}" lock_name="${source#"$INFRA_DIR"/}/package-lock.json"
    command -v "$node" >/dev/null 2>&1 || die "$node not found; Node.js 20 or newer is required"
    command -v "$npm" >/dev/null 2>&1 || die "$npm not found; it comes with Node.js"
    local major
    major="$("$node" -p 'process.versions.node.split(".")[0]')"
    ((major >= 20)) || die "Node.js $("$node" --version) is too old; version 20 or newer is required"
    local want have=""
    want="$("$node" -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha256").update(f.readFileSync(process.argv[1])).digest("hex"))' "$source/package-lock.json")"
    [[ -f "$stamp" ]] && have="$(cat "$stamp")"
    if [[ "$want" == "$have" && -f "$witness" ]]; then
        log "up to date (infra/$name matches infra/$lock_name)"
        return 0
    fi
    mkdir -p "$node_dir"
    cp "$source/package.json" "$source/package-lock.json" "$node_dir/"
    (cd "$node_dir" && "$npm" ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
        die "npm ci in infra/$name failed (see above)"
    [[ -f "$witness" ]] || die "$witness is missing after npm ci"
    printf '%s\n' "$want" >"$stamp"
    log "installed $("$node" -p "const p=require('$witness'); p.name + ' ' + p.version") into infra/$name"
}
