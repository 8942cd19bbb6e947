#!/bin/sh
# One entry point for a fresh Debian machine. Safe to re-run.
#   sh contrib/dev.sh demo   set up, then apply the demo policies to @local (a sandbox folder)
#   sh contrib/dev.sh test   set up, then run lint, type checks and the whole test suite
set -eu
cd "$(dirname "$0")/.."

DEBS="python3 python3-venv openssh-server openssh-client git borgbackup"
# the tests' extras: the test fleet (image build, namespaces, systemd hosts), a real
# Prometheus and promtool, headless Chromium for the HTML report, libfaketime (a daemon
# whose own wall clock steps), nginx (the deploy kind's load balancer)
TEST_DEBS="mmdebstrap systemd-container iproute2 util-linux nftables prometheus chromium faketime nginx-light"

missing_debs() {
    command -v python3 >/dev/null 2>&1 || echo python3
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || echo python3-venv
    [ -x /usr/sbin/sshd ] || echo openssh-server
    command -v ssh-keygen >/dev/null 2>&1 || echo openssh-client
    command -v git >/dev/null 2>&1 || echo git
    command -v borg >/dev/null 2>&1 || echo borgbackup
}

missing_test_debs() {
    command -v mmdebstrap >/dev/null 2>&1 || echo mmdebstrap
    command -v systemd-nspawn >/dev/null 2>&1 || echo systemd-container
    command -v ip >/dev/null 2>&1 || echo iproute2
    command -v nsenter >/dev/null 2>&1 || echo util-linux
    command -v nft >/dev/null 2>&1 || echo nftables
    command -v promtool >/dev/null 2>&1 || echo prometheus
    command -v chromium >/dev/null 2>&1 || echo chromium
    command -v faketime >/dev/null 2>&1 || echo faketime
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || echo nginx-light
}

install_debs() {  # $1: also the tests' packages
    missing=$(missing_debs | tr '\n' ' ')
    [ -n "${1:-}" ] && missing="$missing$(missing_test_debs | tr '\n' ' ')"
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: missing Debian packages: $missing(run as root, or apt-get install them)" >&2
        return 0
    fi
    echo "dev.sh: installing Debian packages: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

setup_venv() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[test]'
        touch .venv/.installed
    fi
}

cmd=${1:-}
case "$cmd" in
    demo)
        install_debs
        setup_venv
        exec .venv/bin/opsagent apply policies/ -i inventories/local.yml
        ;;
    test)
        install_debs tests
        setup_venv
        .venv/bin/ruff check agent tests bench
        .venv/bin/mypy
        # pytest exits 5 when no test ran; any non-zero exit fails this script. Two workers:
        # most tests wait on hosts and timeouts; the fleet's tests stay on one (tests/conftest.py).
        exec .venv/bin/python -m pytest -n 2 --dist loadgroup
        ;;
    *)
        echo "usage: sh contrib/dev.sh demo|test" >&2
        exit 1
        ;;
esac
