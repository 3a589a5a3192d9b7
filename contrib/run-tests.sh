#!/usr/bin/env bash
# Install the dependencies, then run the whole test suite (the lab tests need root).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash contrib/install-deps.sh || exit $?
PY=${PYTHON:-python3}
# lint and types first (seconds): pyproject.toml's [tool.ruff] and [tool.mypy]; a finding fails the run,
# after the tests have run too, so one run shows everything
lint=0
"$PY" -m ruff check swarmscope || lint=$?
"$PY" -m mypy || lint=$?
"$PY" -m pytest -rs tests "$@"
rc=$?
if ((lint != 0)); then
    echo "run-tests: ruff or mypy reported problems (above)" >&2
    ((rc != 0)) || rc=$lint
fi
exit $rc
