#!/usr/bin/env bash
# Installs what ipoib needs on a Debian machine, idempotently and quietly:
# the Debian packages of the real peers, a virtualenv in .venv, the package itself, and its
# hot modules compiled with mypyc (src/ipoib/_compiled.py; IPOIB_COMPILE=0 skips that).
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(python3 python3-venv tshark opensm ibsim-utils infiniband-diags iperf3 iproute2 iputils-ping curl graphviz
              gcc libc6-dev python3-dev)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install: need root to apt-get install: ${missing[*]}" >&2
        exit 1
    fi
    echo "install: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own interpreter: it is built with profile-guided and link-time optimisation, and
# the simulated fabric and the SM run about 8% faster on it than on a plain source build that
# may come first on PATH (PYTHON=... overrides).
PY=${PYTHON:-/usr/bin/python3}
if [ ! -x .venv/bin/python ]; then
    echo "install: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.ipoib-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    echo "install: pip install -e .[test]"
    log=$(mktemp)
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    touch "$stamp"
fi

# Rebuilt whenever a compiled module's source changed since the last build (the digest in
# src/ipoib/_compiled.stamp); until then ipoib runs those modules as pure Python.
current='import runpy, sys; sys.exit(not runpy.run_path("src/ipoib/_compiled.py")["current"]())'
if [ "${IPOIB_COMPILE:-1}" != 0 ] && ! .venv/bin/python -c "$current"; then
    echo "install: compiling the hot modules with mypyc (about a minute)"
    log=$(mktemp)
    if ! .venv/bin/python setup.py -q build_ext --inplace >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
