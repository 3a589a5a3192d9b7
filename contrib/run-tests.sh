#!/usr/bin/env bash
# Install the dependencies, then run the whole test suite (the lab tests need root).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash contrib/install-deps.sh || exit $?
exec "${PYTHON:-python3}" -m pytest -rs tests "$@"
