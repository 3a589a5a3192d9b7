#!/usr/bin/env bash
# Bring up the lab swarm "demo" (a real dockerd in its own network namespace)
# and run `swarmscope collect` and `swarmscope explain whoami` on it. The lab stays up for you to explore;
# pass --down to tear it down at the end. Needs root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
down=0
for arg in "$@"; do
    case $arg in
        --down) down=1 ;;
        -h|--help) echo "usage: $0 [--down]"; exit 0 ;;
        *) echo "demo: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

bash contrib/install-deps.sh
"$PYTHON" contrib/lab/swarmlab.py up --name demo >/dev/null
# DOCKER_HOST, SWARMSCOPE_LAB_NETNS, SWARMSCOPE_LAB_NETNS_DIR, SWARMSCOPE_LAB_NODE_ADDR
eval "$("$PYTHON" contrib/lab/swarmlab.py env --name demo)"

run_in_node=(nsenter --net="$SWARMSCOPE_LAB_NETNS" env DOCKER_HOST="$DOCKER_HOST")
echo "+ ${run_in_node[*]} $PYTHON -m swarmscope collect --netns-dir $SWARMSCOPE_LAB_NETNS_DIR"
rc=0
"${run_in_node[@]}" "$PYTHON" -m swarmscope collect --netns-dir "$SWARMSCOPE_LAB_NETNS_DIR" || rc=$?
if ((rc != 0 && rc != 4)); then
    echo "demo: swarmscope collect exited $rc" >&2
fi
echo
echo "+ ${run_in_node[*]} $PYTHON -m swarmscope explain whoami --netns-dir $SWARMSCOPE_LAB_NETNS_DIR"
rc=0
"${run_in_node[@]}" "$PYTHON" -m swarmscope explain whoami --netns-dir "$SWARMSCOPE_LAB_NETNS_DIR" || rc=$?
# explain exits 1 when it finds errors: on a kernel without ip_vs it does (kernel.no-ipvs)
if ((rc == 1)); then rc=0; fi

if ((down)); then
    "$PYTHON" contrib/lab/swarmlab.py down --name demo
    exit "$rc"
fi

cat <<MSG

The lab swarm "demo" is up: a dockerd in network namespace $SWARMSCOPE_LAB_NETNS
(node address $SWARMSCOPE_LAB_NODE_ADDR, Docker's namespaces in $SWARMSCOPE_LAB_NETNS_DIR).

Use it from this directory:
  eval "\$($PYTHON contrib/lab/swarmlab.py env --name demo)"
  docker service ls                      # DOCKER_HOST points at the lab
  nsenter --net=\$SWARMSCOPE_LAB_NETNS env DOCKER_HOST=\$DOCKER_HOST \\
      $PYTHON -m swarmscope collect --netns-dir \$SWARMSCOPE_LAB_NETNS_DIR --json
  nsenter --net=\$SWARMSCOPE_LAB_NETNS_DIR/ingress_sbox iptables-save   # one of Docker's namespaces
  $PYTHON contrib/lab/swarmlab.py status --name demo

Tear it down:
  $PYTHON contrib/lab/swarmlab.py down --name demo
MSG
exit "$rc"
