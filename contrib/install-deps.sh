#!/usr/bin/env bash
# Install what swarmscope, its tests and its lab swarm need, on Debian 12 as root.
# Idempotent: apt runs only when a package is missing; pip re-checks the checkout.
# Quiet unless something fails, then the failing step's whole output is shown.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
PACKAGES=(docker.io iptables nftables ipvsadm busybox-static iproute2 util-linux debootstrap)

quiet() {  # run "$@" with its output kept aside; show it only if it fails
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        echo "install-deps: failed ($rc): $*" >&2
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: run as root (apt-get, dockerd and network namespaces need it)" >&2
    exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

apt_updated=0
apt_install() {  # apt-get update at most once, then install the packages given
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    export DEBIAN_FRONTEND=noninteractive
    if ((apt_updated == 0)); then
        quiet apt-get update
        apt_updated=1
    fi
    echo "install-deps: apt-get install ${missing[*]}" >&2
    quiet apt-get install -y "${missing[@]}"
}

apt_install "${PACKAGES[@]}"

# pip for the interpreter we use (Debian's own python3 ships without it)
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
fi
pip_args=(install --quiet --disable-pip-version-check -e '.[test]')
# Debian's python3 is "externally managed" (PEP 668); this is a throwaway test machine
if "$PYTHON" -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    pip_args+=(--break-system-packages)
fi
quiet "$PYTHON" -m pip "${pip_args[@]}"

# the other engines of tests/integration/test_engines_lab.py: Debian's docker.io from
# trixie (26.1) and sid (28.x), unpacked under /var/cache/swarmscope-engines and never
# installed (contrib/lab/engine_cache.py; own apt lists, the machine's apt untouched).
# Fetched once (about 10 s and 60 MB each); not fatal: without them those tests skip.
engines=${SWARMSCOPE_TEST_ENGINES:-26.1,28}
if [[ $engines != 0 ]]; then
    IFS=, read -ra engine_list <<<"$engines"
    for e in "${engine_list[@]}"; do
        "$PYTHON" contrib/lab/engine_cache.py path "$e" >/dev/null 2>&1 && continue
        quiet "$PYTHON" contrib/lab/engine_cache.py fetch "$e" ||
            echo "install-deps: engine $e not fetched; tests/integration/test_engines_lab.py will skip it" >&2
    done
fi

# the picture checks: Graphviz renders the DOT form; chromium + mermaid (pinned in
# tests/render/package.json) render the Mermaid form in a headless browser
apt_install graphviz chromium fonts-dejavu-core
command -v npm >/dev/null 2>&1 || apt_install npm
if [[ ! -f tests/render/node_modules/mermaid/dist/mermaid.min.js ]]; then
    quiet npm ci --prefix tests/render --no-audit --no-fund --ignore-scripts
fi
