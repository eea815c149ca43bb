# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo (which set -euo pipefail first).
# Moves to the repository root and makes sure .venv exists there with the project
# installed in editable mode with its dev extras; it reinstalls whenever
# pyproject.toml is newer than the stamp file .venv/.asyncq-installed.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

asyncq_stamp=.venv/.asyncq-installed

asyncq_die() {
    echo "asyncq: $*" >&2
    exit 2
}

# Succeeds when the given interpreter is Python 3.11 or newer.
asyncq_python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

asyncq_make_venv() {
    local python=python3
    command -v "$python" >/dev/null 2>&1 \
        || asyncq_die "python3 not found; install Python 3.11 or newer"
    asyncq_python_ok "$python" \
        || asyncq_die "python3 is $("$python" -V 2>&1); asyncq needs Python 3.11 or newer"
    if ! "$python" -m venv .venv; then
        rm -rf .venv
        asyncq_die "'python3 -m venv .venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    fi
}

asyncq_install() {
    echo "asyncq: installing the project into .venv (pip install -e '.[dev]')" >&2
    .venv/bin/pip install -q -e '.[dev]' \
        || asyncq_die "'.venv/bin/pip install -e .[dev]' failed (see above)"
    touch "$asyncq_stamp"
}

if [ ! -x .venv/bin/python ]; then
    asyncq_make_venv
elif ! asyncq_python_ok .venv/bin/python; then
    asyncq_die ".venv has $(.venv/bin/python -V 2>&1); remove .venv so it is made again with Python 3.11+"
fi

if [ ! -f "$asyncq_stamp" ] || [ pyproject.toml -nt "$asyncq_stamp" ]; then
    asyncq_install
fi
