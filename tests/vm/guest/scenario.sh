#!/bin/bash
# scenario.sh - runs inside the VM guest (as root, no network device but a dummy eth0).
#   /scenario  this directory (9p, read-only)     /src     the swarmscope checkout (9p, read-only)
#   /wheels    the host's wheelhouse (9p, ro)      /out     results (9p, read-write)
# Steps: install swarmscope from the checkout -> dockerd -> swarm init -> busybox image -> lab services
# -> phase "healthy" -> one fault at a time (capture + swarmscope + repair).  Every phase writes
# /out/phases/<phase>/ ; /out/phases.txt lists the phases in order with their outcome.
# /sbin/vm-run (baked into the image) shuts the guest down after this script, whatever happens.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# run from a private copy: bash reads a script as it goes, and /scenario is the live checkout's directory
if [ "${SCENARIO_COPY:-}" != 1 ]; then
  rm -rf /tmp/scenario && cp -r /scenario /tmp/scenario && SCENARIO_COPY=1 exec /bin/bash /tmp/scenario/scenario.sh "$@"
fi
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 LC_ALL=C
O=/out
NS=/var/run/docker/netns
VENV=/opt/swarmscope-venv
GC="python3 /tmp/scenario/guestcheck.py"
ADVERTISE=192.168.76.15

# ---- the swarmscope commands run in every phase (arguments to `python -m swarmscope`).  Extend here.
# one collection per phase (explain --save keeps the dump it was made from); check reads that dump.
# {d} is the phase's swarmscope output directory; the slug of a command names its output files.
SWARMSCOPE_COMMANDS=(
  "explain whoami --format json --save {d}/dump.json --dockerd-log /var/log/dockerd.log"
  "check --format json --from {d}/dump.json"
)
# --probe (issue 13): in the healthy phases and the faults that only traffic shows, a collection of its own
# that also connects, from the node's namespaces, to the swarm's own addresses
PROBE_COMMAND="check --probe --probe-http --probe-timeout 3 --format json --save {d}/probe-dump.json"
# ---- the faults, in order (name = directory under /out/phases); FAULTS in /out/params.env may pick a subset
ALL_FAULTS="a-dnat-flushed b-backend-deleted c-unknown-backend d-weight-zero e-mark-deleted f-vip-removed g-lb-ip-forward-off h-task-killed i-xt-ipvs-missing j-ip-vs-rr-missing k-ipvs-sysctl-reset l-filter-accept-deleted n-ingress-snat-deleted p-task-not-listening"
FAULTS=${FAULTS:-$ALL_FAULTS}
# ---- repair ladder, tried in order after each fault until the mesh is healthy again: first the step that
# worked for that fault when the whole ladder was tried from the cheapest up (LEARN_REPAIRS=1 does that
# again), then the rest.  force = `docker service update --force whoami`; recreate = `docker service rm`
# + create whoami; reset = remove all services and the demo network, create again; restart = restart
# dockerd; manual = undo the fault by hand; wait = let swarm heal by itself.
REPAIRS=${REPAIRS:-"force recreate reset restart manual"}
LEARN_REPAIRS=${LEARN_REPAIRS:-0}
first_repair() {
  case $1 in
    b-*|d-*|p-*)                     echo force ;;       # task replacement re-adds/re-weights backends
    a-*|c-*|e-*|f-*)                 echo recreate ;;    # only a service's first/last backend (re)programs these
    g-lb-ip-forward-off)             echo reset ;;       # the lb_ namespace must be recreated
    h-task-killed)                   echo wait ;;        # swarm replaces the task itself
    i-*|j-*|k-*|l-*|m-*|n-*)         echo manual ;;      # put the piece back (i, j: and re-create the services)
  esac
}
[ -f $O/params.env ] && . $O/params.env

mark() { local u; u=$(cut -d' ' -f1 /proc/uptime); echo "VM-MARK $* uptime=$u"; printf '%-40s %8s s guest uptime\n' "$*" "$u" >> $O/timings-guest.txt; }
waitfor() { # timeout_s cmd...
  local t=$1; shift; local end=$((SECONDS+t))
  until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 1; done
}
fail() { echo "VM-FAIL $*"; echo "FAILED: $*" >> $O/FAILED.txt; exit 1; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mkdir -p $O/phases $O/setup
: > $O/phases.txt
mark scenario_started
uname -a > $O/setup/guest-uname.txt

# ---------------------------------------------------------------- dockerd (in the background) + swarmscope install
ENGINE_PATH=   # set by switch_engine: an unpacked engine's usr/sbin:usr/bin first on dockerd's PATH
start_dockerd() {
  PATH=${ENGINE_PATH:+$ENGINE_PATH:}$PATH dockerd --log-level=info >> /var/log/dockerd.log 2>&1 &
  waitfor 300 docker info
}
start_dockerd & DSTART=$!

# install swarmscope from a copy of the read-only checkout (pip writes build files next to the sources)
rm -rf /tmp/src; mkdir -p /tmp/src
cp -r /src/swarmscope /src/pyproject.toml /tmp/src/
for f in README.md README.rst LICENSE; do [ -f /src/$f ] && cp /src/$f /tmp/src/; done
[ -f /tmp/src/README.md ] || { echo "(README.md missing in the checkout: placeholder used)" > /tmp/src/README.md; echo "README.md missing in checkout" >> $O/setup/pip-install.log; }
find /tmp/src -name __pycache__ -prune -exec rm -rf {} +
( cd /tmp && $VENV/bin/pip install --no-index --no-cache-dir --find-links /wheels --no-build-isolation /tmp/src ) >> $O/setup/pip-install.log 2>&1
echo $? > $O/setup/pip-install.rc
$VENV/bin/pip freeze > $O/setup/pip-freeze.txt 2>&1
mark swarmscope_installed rc=$(cat $O/setup/pip-install.rc)

wait $DSTART || fail "dockerd not ready"
mark dockerd_ready

# ---------------------------------------------------------------- swarm + image + services
docker swarm init --advertise-addr $ADVERTISE > $O/setup/swarm-init.txt 2>&1 || fail "swarm init: $(cat $O/setup/swarm-init.txt)"
mark swarm_init_done
rm -rf /tmp/bbroot; mkdir -p /tmp/bbroot/bin /tmp/bbroot/www
cp /bin/busybox /tmp/bbroot/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox /tmp/bbroot/bin/$a; done
tar -C /tmp/bbroot -c . | docker import - bb:1 > $O/setup/docker-import.txt 2>&1 || fail "docker import"
mark image_imported

SVC_OPTS="--detach --no-resolve-image --stop-grace-period 1s"
HTTPD='mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 80 -h /www'
# whoami's server runs in the background under a process that stays (busybox httpd without -f forks): the
# server can stop while the container, its task and every rule stay (fault p); killing PID 1 still ends it (h)
WHOAMI_HTTPD='mkdir -p /www; hostname > /www/index.html; httpd -p 80 -h /www; exec sleep 2147483647'
# --restart-delay: after fault h (a task killed behind swarm's back) the service runs short for 40 s,
# long enough for swarmscope to see it under software emulation; no other fault restarts a task
create_whoami() { docker service create $SVC_OPTS --restart-delay 40s --name whoami --replicas 2 --publish 8000:80 --network demo bb:1 sh -c "$WHOAMI_HTTPD"; }
create_all() {
  docker network create -d overlay --attachable demo
  create_whoami
  docker service create $SVC_OPTS --name client --network demo bb:1 sleep 2147483647
  docker service create $SVC_OPTS --name dnsrr --endpoint-mode dnsrr --network demo bb:1 sleep 2147483647
  docker service create $SVC_OPTS --name hostport --publish mode=host,published=8081,target=80 bb:1 sh -c "$HTTPD"
  docker service create $SVC_OPTS --name glob --mode global --network demo bb:1 sleep 2147483647
}
remove_all() {
  docker service rm whoami client dnsrr hostport glob
  waitfor 120 sh -c '[ -z "$(docker ps -q)" ]'
  docker network rm demo
  waitfor 60 sh -c "! ls $NS/lb_* >/dev/null 2>&1"
}
create_all > $O/setup/services-create.txt 2>&1 || fail "service create: $(tail -3 $O/setup/services-create.txt)"
# an external client: a namespace of its own behind a veth, routed to the node's address, so its
# connections to a published port are forwarded (PREROUTING DNAT -> FORWARD), as a remote client's are
# (the node's own wget leaves through OUTPUT and never meets FORWARD)
{ ip netns add ext && ip link add extc0 type veth peer name extc1 && ip link set extc1 netns ext \
  && ip addr add 192.168.77.1/24 dev extc0 && ip link set extc0 up \
  && ip netns exec ext sh -c 'ip link set lo up; ip addr add 192.168.77.2/24 dev extc1; ip link set extc1 up; ip route add default via 192.168.77.1'
} > $O/setup/external-client.txt 2>&1 || echo "external client not set up: $(tail -2 $O/setup/external-client.txt)" >> $O/setup/external-client.txt
mark services_created

health() { # -> /tmp/health.txt (also /out/health-last.txt, to follow a run from the host)
  local t0=$SECONDS rc
  $GC health --baseline $O/baseline.json > /tmp/health.txt 2>&1; rc=$?
  echo "# health check exit $rc, $((SECONDS-t0)) s, uptime $(uptime_s)" >> /tmp/health.txt
  cp /tmp/health.txt $O/health-last.txt
  return $rc
}
wait_healthy() { # timeout_s [copy-last-report-to]
  local end=$((SECONDS+$1)) rc=1
  while :; do health && { rc=0; break; }; [ $SECONDS -ge $end ] && break; sleep 2; done
  [ -n "${2:-}" ] && cp /tmp/health.txt "$2"
  return $rc
}
wait_healthy 420 $O/setup/health-initial.txt || fail "lab never became healthy: $(grep -v '^ok' /tmp/health.txt | head -5)"
mark lab_healthy

# ---------------------------------------------------------------- captures
capture() { # dir [full]   (full: also the docker CLI's info/version text; the healthy phase)
  local d=$1 full=${2:-} p
  mkdir -p $d/ns $d/docker
  ls -l $NS > $d/netns-list.txt 2>&1
  bash /tmp/scenario/nscap.sh $d/ns/host host & p=$!
  ls $NS | xargs -P 3 -I{} nsenter --net=$NS/{} bash /tmp/scenario/nscap.sh $d/ns/{}
  wait $p
  local dd=$d/docker
  $GC dump $dd ${full:+--full} 2>> $dd/commands.txt   # the API's view, also writes $d/sandboxes.txt
  dc() { local f=$1; shift; "$@" > $dd/$f 2>&1; echo "$f: $* (exit $?)" >> $dd/commands.txt; }
  if [ -n "$full" ]; then
    dc docker-info.txt            docker info
    dc docker-version.txt         docker version
  fi
  dc service-ps.txt               docker service ps --no-trunc $(docker service ls -q)
  # DNS from the client container (embedded resolver 127.0.0.11), and the VIP path
  local client; client=$(docker ps -q -f label=com.docker.swarm.service.name=client | head -1)
  if [ -n "$client" ]; then
    docker exec $client sh -c 'for q in whoami tasks.whoami dnsrr tasks.dnsrr; do echo "=== $q"; nslookup $q 2>&1; echo "=== exit $?"; done' > $dd/dns-all.txt 2>&1
    awk '/^=== exit/{next} /^=== /{f="'$dd'/dns-" $2 ".txt"; next} {print > f}' $dd/dns-all.txt
    rm -f $dd/dns-all.txt
    { for i in 1 2; do docker exec $client timeout 3 wget -qO- http://whoami/ || echo "FAILED (exit $?)"; done; } > $d/wget-client-to-whoami-vip.txt 2>&1
  fi
  { for i in 1 2 3 4; do timeout 3 busybox wget -qO- http://127.0.0.1:8000/ || echo "FAILED (exit $?)"; done; } > $d/wget-127.0.0.1-8000.txt 2>&1
  { for i in 1 2; do timeout 3 busybox wget -qO- http://$ADVERTISE:8000/ || echo "FAILED (exit $?)"; done; } > $d/wget-eth0-8000.txt 2>&1
  { for i in 1 2; do ip netns exec ext timeout 3 busybox wget -qO- http://$ADVERTISE:8000/ || echo "FAILED (exit $?)"; done; } > $d/wget-external-8000.txt 2>&1
  { timeout 3 busybox wget -qO- http://127.0.0.1:8081/ || echo "FAILED (exit $?)"; } > $d/wget-127.0.0.1-8081.txt 2>&1
}
run_swarmscope() { # dir [probe]
  local d=$1/swarmscope cmd slug t0 cmds=("${SWARMSCOPE_COMMANDS[@]}")
  mkdir -p $d
  [ -n "${2:-}" ] && cmds+=("$PROBE_COMMAND")
  for cmd in "${cmds[@]}"; do
    slug=$(echo "${cmd%% --save*}" | sed 's/ --from.*//' | tr -s ' -' '__' | sed 's/^_*//; s/_*$//')
    cmd=${cmd//\{d\}/$d}
    t0=$SECONDS
    ( cd / && timeout 300 $VENV/bin/python -m swarmscope $cmd > $d/$slug.stdout 2> $d/$slug.stderr )
    echo $? > $d/$slug.rc
    echo "python -m swarmscope $cmd: exit $(cat $d/$slug.rc), $((SECONDS-t0)) s" >> $d/commands.txt
  done
}

# ---------------------------------------------------------------- phase: healthy
$GC facts --json $O/baseline.json > /dev/null
P=$O/phases/healthy
mkdir -p $P; cp /tmp/health.txt $P/health-before.txt; cp $O/baseline.json $P/facts.json
run_swarmscope $P probe & SS=$!
capture $P full
mark healthy_captured
wait $SS
mark healthy_swarmscope_done
echo "healthy ok" >> $O/phases.txt

# ---------------------------------------------------------------- rolling update (not a fault)
# `check` again and again while whoami's tasks are replaced one at a time: old tasks drain (weight 0,
# out of DNS) before they stop, new ones join as they start. Each run records the update state first.
R=$O/rolling-update; mkdir -p $R
docker service update --detach --update-parallelism 1 --update-delay 8s --force whoami > $R/update.txt 2>&1
i=0
while [ $i -lt 6 ]; do
  st=$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' whoami)
  echo "$st" > $R/check-$i.state
  ( cd / && timeout 120 $VENV/bin/python -m swarmscope check --format json --save $R/check-$i.dump.json > $R/check-$i.json 2> $R/check-$i.stderr ); echo $? > $R/check-$i.rc
  i=$((i+1))
  [ "$st" = updating ] || break
done
waitfor 240 sh -c '[ "$(docker service inspect -f "{{.UpdateStatus.State}}" whoami)" = completed ]'
wait_healthy 240 $R/health-after.txt || echo "not healthy after the rolling update" > $R/NOT-HEALTHY.txt
$GC facts --json $O/baseline.json > /dev/null   # the tasks (and their addresses) are new
mark rolling_update_done

# ---------------------------------------------------------------- faults
nsx() { local n=$1; shift; nsenter --net=$NS/$n "$@"; }
apply_fault() { # name -> runs the fault, commands and output into $P/fault.txt
  case $1 in
    a-dnat-flushed)      echo "flush DOCKER-INGRESS in the host nat table (what a firewall reload does)"
                         iptables -t nat -F DOCKER-INGRESS ;;
    b-backend-deleted)   echo "delete real server $T1_INGRESS_IP from the ingress FWM $INGRESS_MARK service"
                         nsx ingress_sbox ipvsadm -d -f $INGRESS_MARK -r $T1_INGRESS_IP:0 ;;
    c-unknown-backend)   echo "add real server $UNKNOWN_BACKEND (no task owns it) to the ingress FWM $INGRESS_MARK service"
                         nsx ingress_sbox ipvsadm -a -f $INGRESS_MARK -r $UNKNOWN_BACKEND:0 -m ;;
    d-weight-zero)       echo "set the weight of real server $T1_INGRESS_IP in the ingress FWM $INGRESS_MARK service to 0"
                         nsx ingress_sbox ipvsadm -e -f $INGRESS_MARK -r $T1_INGRESS_IP:0 -m -w 0 ;;
    e-mark-deleted)      local rule; rule=$(nsx ingress_sbox iptables -t mangle -S PREROUTING | grep -- '--dport 8000' | grep -m1 MARK)
                         echo "delete the ingress_sbox mangle PREROUTING rule: $rule"
                         nsx ingress_sbox iptables -t mangle ${rule/-A /-D } ;;
    f-vip-removed)       echo "remove whoami's VIP $WHOAMI_VIP_DEMO/32 from eth0 in $LB_NS (demo's load balancer)"
                         nsx $LB_NS ip addr del $WHOAMI_VIP_DEMO/32 dev eth0 ;;
    g-lb-ip-forward-off) echo "net.ipv4.ip_forward=0 in $LB_NS (demo's load balancer)"
                         nsx $LB_NS sysctl -w net.ipv4.ip_forward=0 ;;
    h-task-killed)       echo "kill -9 of whoami task container ${T1_CONTAINER:0:12}'s init, host PID $T1_PID (behind swarm's back; ingress $T1_INGRESS_IP, demo $T1_DEMO_IP)"
                         kill -9 $T1_PID ;;
    i-xt-ipvs-missing)   # a minimal iptables build: the ipvs match is gone; dockerd needs it for each sandbox's SNAT rule
                         local lib; lib=$(ls /usr/lib/*/xtables/libxt_ipvs.so | head -1)
                         echo "move $lib aside, then create network matchless and a service on it (a new lb_ sandbox)"
                         mkdir -p /root/aside && mv -v $lib /root/aside/ && echo $lib > /root/aside/libxt_ipvs.path
                         docker network create -d overlay matchless
                         docker service create $SVC_OPTS --name matchless --network matchless bb:1 sleep 2147483647
                         waitfor 120 sh -c '[ -n "$(docker ps -q -f label=com.docker.swarm.service.name=matchless)" ]'
                         sleep 10; ls $NS ;;
    j-ip-vs-rr-missing)  # a kernel modules package without the round-robin scheduler dockerd creates every service with
                         local ko; ko=$(find /lib/modules/$(uname -r) -name 'ip_vs_rr.ko*' | head -1)
                         echo "remove the services (nothing uses ip_vs_rr), unload it, move $ko aside, depmod; re-create the services"
                         remove_all; sleep 2
                         modprobe -r ip_vs_rr; echo "lsmod ip_vs_rr after unload: $(lsmod | grep -c '^ip_vs_rr ')"
                         mkdir -p /root/aside && mv -v $ko /root/aside/ && echo $ko > /root/aside/ip_vs_rr.path && depmod -a
                         create_all; settle_services ;;
    k-ipvs-sysctl-reset) echo "net.ipv4.vs.expire_nodest_conn=0 in ingress_sbox (dockerd writes 1)"
                         nsx ingress_sbox sysctl -w net.ipv4.vs.expire_nodest_conn=0 ;;
    # the faults whose rules differ between engines: the filter ACCEPT (-m state before 25, -m conntrack
    # after), the jump's place (FORWARD before 28, first rule of DOCKER-FORWARD from 28), the ipvs SNAT
    l-filter-accept-deleted) local rule; rule=$(iptables -S DOCKER-INGRESS | grep -- '--dport 8000' | grep -m1 ACCEPT)
                         echo "delete the host's filter rule: $rule"; mkdir -p /root/aside; echo "$rule" > /root/aside/l.rule
                         iptables ${rule/-A /-D } ;;
    m-ingress-after-bridge) local n; n=$(iptables -S DOCKER-FORWARD | grep '^-A' | grep -n -- '-j DOCKER-BRIDGE$' | cut -d: -f1)
                         echo "move the jump to DOCKER-INGRESS after rule $n of DOCKER-FORWARD (-j DOCKER-BRIDGE)"
                         iptables -S DOCKER-FORWARD
                         iptables -D DOCKER-FORWARD -j DOCKER-INGRESS && iptables -I DOCKER-FORWARD $n -j DOCKER-INGRESS
                         iptables -S DOCKER-FORWARD ;;
    n-ingress-snat-deleted) local rule; rule=$(nsx ingress_sbox iptables -t nat -S POSTROUTING | grep -m1 -- '--ipvs')
                         echo "delete ingress_sbox's nat rule: $rule"; mkdir -p /root/aside; echo "$rule" > /root/aside/n.rule
                         nsx ingress_sbox iptables -t nat ${rule/-A /-D } ;;
    # issue 13: a fault no rule shows - the task's server stops, its container, task, real servers and rules stay
    p-task-not-listening) echo "stop the HTTP server inside whoami task container ${T1_CONTAINER:0:12} (ingress $T1_INGRESS_IP, demo $T1_DEMO_IP); the container keeps running"
                         docker exec $T1_CONTAINER killall httpd; sleep 1
                         docker exec $T1_CONTAINER ps ;;
    *) echo "unknown fault $1"; return 2 ;;
  esac
}
settle_services() { # the tasks of the re-created services run, and dockerd has tried to program them
  waitfor 120 sh -c '[ "$(docker ps -q -f label=com.docker.swarm.service.name=whoami | wc -l)" -ge 2 ]'
  sleep 10; docker service ls
}
# what the load balancers look like, sampled every ~0.5 s (stale entries after a kill show up here)
timeline() { # seconds file
  local end=$((SECONDS+$1))
  while [ $SECONDS -lt $end ]; do
    { echo "--- t=$(uptime_s)"
      echo "ingress_sbox:"; nsx ingress_sbox ipvsadm -Ln | grep -E 'FWM|->.*(Masq|Route|Tunnel)'
      echo "$LB_NS:"; nsx $LB_NS ipvsadm -Ln | grep -A3 -E "FWM +$DEMO_MARK " | grep -E 'FWM|->.*Masq'
    } >> $2 2>&1
    sleep 0.2
  done
}
undo_fault() { # manual undo (last rung of the ladder), needs the facts taken before the fault
  case $1 in
    a-dnat-flushed)      iptables -t nat -A DOCKER-INGRESS -p tcp --dport 8000 -j DNAT --to-destination $(docker network inspect docker_gwbridge -f '{{(index .Containers "ingress-sbox").IPv4Address}}' | cut -d/ -f1):8000
                         iptables -t nat -A DOCKER-INGRESS -j RETURN ;;
    b-backend-deleted)   nsx ingress_sbox ipvsadm -a -f $INGRESS_MARK -r $T1_INGRESS_IP:0 -m -w 1 ;;
    c-unknown-backend)   nsx ingress_sbox ipvsadm -d -f $INGRESS_MARK -r $UNKNOWN_BACKEND:0 ;;
    d-weight-zero)       nsx ingress_sbox ipvsadm -e -f $INGRESS_MARK -r $T1_INGRESS_IP:0 -m -w 1 ;;
    e-mark-deleted)      nsx ingress_sbox iptables -t mangle -A PREROUTING -p tcp --dport 8000 -j MARK --set-mark $INGRESS_MARK ;;
    f-vip-removed)       nsx $LB_NS ip addr add $WHOAMI_VIP_DEMO/32 dev eth0 ;;
    g-lb-ip-forward-off) nsx $LB_NS sysctl -w net.ipv4.ip_forward=1 ;;
    h-task-killed)       : ;;
    i-xt-ipvs-missing)   mv -v /root/aside/libxt_ipvs.so "$(cat /root/aside/libxt_ipvs.path)"; docker service rm matchless
                         waitfor 120 sh -c '[ -z "$(docker ps -q -f label=com.docker.swarm.service.name=matchless)" ]'
                         docker network rm matchless ;;
    j-ip-vs-rr-missing)  mv -v /root/aside/$(basename "$(cat /root/aside/ip_vs_rr.path)") "$(cat /root/aside/ip_vs_rr.path)"
                         depmod -a; remove_all; sleep 2; create_all ;;
    k-ipvs-sysctl-reset) nsx ingress_sbox sysctl -w net.ipv4.vs.expire_nodest_conn=1 ;;
    l-filter-accept-deleted) local rule; rule=$(cat /root/aside/l.rule); iptables ${rule/-A DOCKER-INGRESS/-I DOCKER-INGRESS 1} ;;
    m-ingress-after-bridge) iptables -D DOCKER-FORWARD -j DOCKER-INGRESS; iptables -I DOCKER-FORWARD 1 -j DOCKER-INGRESS ;;
    n-ingress-snat-deleted) local rule; rule=$(cat /root/aside/n.rule); nsx ingress_sbox iptables -t nat ${rule/-A POSTROUTING/-I POSTROUTING 1} ;;
    p-task-not-listening) docker exec $T1_CONTAINER httpd -p 80 -h /www ;;
  esac
}
restart_dockerd() {
  local p; p=$(cat /var/run/docker.pid)
  kill -TERM $p; waitfor 120 sh -c "! kill -0 $p" || kill -9 $p
  start_dockerd
}
repair_step() { # step fault -> 0 when the step ran (health is judged by the caller)
  case $1 in
    wait)     : ;;
    force)    docker service update --detach --force whoami
              waitfor 180 sh -c '[ "$(docker service inspect -f "{{.UpdateStatus.State}}" whoami)" = completed ]' ;;
    recreate) docker service rm whoami
              waitfor 120 sh -c '[ -z "$(docker ps -q -f label=com.docker.swarm.service.name=whoami)" ]'
              sleep 2; create_whoami ;;
    reset)    remove_all; sleep 2; create_all ;;
    restart)  restart_dockerd ;;
    manual)   undo_fault $2 ;;
  esac
}
step_grace() { case $1 in wait) echo 150;; force) echo 15;; recreate|reset) echo 150;; restart) echo 240;; manual) echo 150;; esac; }

# a fault is made on a settled swarm: every running whoami task in its state longer than swarmscope's
# settle window (read from the installed correlate/lifecycle.py SETTLE_SECONDS), or a task a repair just re-created would be
# 'starting' and its missing real server no fault yet (what a node shows in its first seconds)
SETTLE=$($VENV/bin/python -c 'from swarmscope.correlate.lifecycle import SETTLE_SECONDS as s; print(int(s) + 1)' 2>/dev/null || echo 46)
settle_tasks() {
  local ids; ids=$(docker service ps -q --filter desired-state=running whoami 2>/dev/null)
  [ -n "$ids" ] || return 0
  docker inspect -f '{{.Status.Timestamp}}' $ids 2>/dev/null | python3 -c '
import sys, time, datetime
ts = [datetime.datetime.fromisoformat(l.strip()[:26].rstrip("Z") + "+00:00").timestamp() for l in sys.stdin if l.strip()]
wait = max(ts) + float(sys.argv[1]) - time.time() if ts else 0
time.sleep(max(0.0, wait)); print(f"waited {max(0.0, wait):.0f} s for the tasks to settle")' $SETTLE
}
fault_phase() { # fault [phase-prefix]   -> $O/phases/<prefix><fault>/, a line in phases.txt
  local F=$1 pre=${2:-} P step t0 outcome ladder SS TL
  P=$O/phases/$pre$F; mkdir -p $P
  settle_tasks > $P/settle.txt 2>&1
  if ! health; then
    echo "# not healthy before the fault" > $P/NOT-HEALTHY-BEFORE.txt; cat /tmp/health.txt >> $P/NOT-HEALTHY-BEFORE.txt
  fi
  $GC facts --json $P/facts-before.json > $P/facts-before.sh
  . $P/facts-before.sh
  mark "fault $F"
  TL=
  case $F in h-*) timeline 30 $P/timeline.txt & TL=$!;; esac
  { apply_fault $F; echo "(fault command exit $?, at uptime $(uptime_s))"; } > $P/fault.txt 2>&1
  sleep 1
  local probe=; case $F in p-*) probe=probe;; esac   # the faults only traffic shows
  run_swarmscope $P $probe & SS=$!       # read-only, like the capture: both see the same broken state
  capture $P
  mark "fault $F captured"
  wait $SS
  [ -n "$TL" ] && wait $TL
  $GC facts --json $P/facts-after-fault.json > /dev/null
  health; cp /tmp/health.txt $P/health-after-fault.txt
  # repair ladder
  if [ "$LEARN_REPAIRS" = 1 ]; then ladder=$REPAIRS; case $F in h-*) ladder="wait $REPAIRS";; esac
  else ladder=$(first_repair $F); for step in $REPAIRS; do [[ " $ladder " == *" $step "* ]] || ladder="$ladder $step"; done
  fi
  outcome="NOT-REPAIRED"
  for step in $ladder; do
    t0=$SECONDS
    repair_step $step $F >> $P/repair-$step.log 2>&1
    if wait_healthy $(step_grace $step) $P/repair-$step-health.txt; then
      echo "$step: REPAIRED ($((SECONDS-t0)) s)" >> $P/repair.txt; outcome="repaired-by-$step"; break
    fi
    echo "$step: not repaired ($((SECONDS-t0)) s): $(grep FAIL /tmp/health.txt | cut -c1-200 | tr '\n' ';')" >> $P/repair.txt
  done
  mark "fault $pre$F $outcome"
  echo "$pre$F $outcome" >> $O/phases.txt
}
for F in $FAULTS; do fault_phase $F; done

# ---------------------------------------------------------------- the other engines (issue 11)
# ENGINES (params.env): directories of the host's engine cache (contrib/lab/engine_cache.py), shared at
# /engines. For each: the node is wiped as a reboot would (dockerd stopped, its state, namespaces, links,
# rules and IPVS tables gone), that engine's dockerd starts with the image's containerd, runc and tini,
# the swarm and services are made again, then phase <engine>/healthy and ENGINE_FAULTS (plus
# m-ingress-after-bridge from 28 on, where the jump lives in DOCKER-FORWARD).
ENGINE_FAULTS=${ENGINE_FAULTS:-"l-filter-accept-deleted n-ingress-snat-deleted"}
wipe_node() {
  local p; p=$(cat /var/run/docker.pid 2>/dev/null)
  [ -n "$p" ] && { kill -TERM $p; waitfor 120 sh -c "! kill -0 $p" || kill -9 $p; }
  pkill -x containerd; sleep 1
  for n in /var/run/docker/netns/*; do umount $n 2>/dev/null; done
  rm -rf /var/lib/docker /var/run/docker /run/docker /var/run/docker.pid /var/run/docker.sock
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(docker|veth|br-)'); do ip link del $l 2>/dev/null; done
  for t in filter nat mangle raw; do iptables -t $t -F; iptables -t $t -X; done
  for t in filter nat mangle raw; do iptables-legacy -t $t -F 2>/dev/null; iptables-legacy -t $t -X 2>/dev/null; done
  iptables -P FORWARD ACCEPT; ipvsadm -C
  sysctl -qw net.ipv4.ip_forward=0   # as at boot: each engine sets it (and the FORWARD policy) itself
}
if [ -n "${ENGINES:-}" ]; then
  mkdir -p /engines
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro vmengines /engines || fail "mount /engines"
  for E in $ENGINES; do
    # phases are named by the engine's label (26.1, 28: stable); setup/engine-<label>.txt has its exact version
    V=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["label"])' /engines/$E/ENGINE.json 2>/dev/null || echo $E)
    pre="engine-$V/"
    mark "engine $V switch"
    { wipe_node; ENGINE_PATH=/engines/$E/usr/sbin:/engines/$E/usr/bin; start_dockerd; } > $O/setup/engine-$V.txt 2>&1 \
      || { echo "${pre}healthy NOT-STARTED" >> $O/phases.txt; mark "engine $V did not start"; continue; }
    docker version >> $O/setup/engine-$V.txt 2>&1
    docker swarm init --advertise-addr $ADVERTISE >> $O/setup/engine-$V.txt 2>&1 || { echo "${pre}healthy NO-SWARM" >> $O/phases.txt; continue; }
    tar -C /tmp/bbroot -c . | docker import - bb:1 >> $O/setup/engine-$V.txt 2>&1
    create_all >> $O/setup/engine-$V.txt 2>&1
    if ! wait_healthy 420 $O/setup/health-engine-$V.txt; then
      echo "${pre}healthy NOT-HEALTHY" >> $O/phases.txt; mark "engine $V never healthy"; continue
    fi
    $GC facts --json $O/baseline.json > /dev/null
    P=$O/phases/${pre}healthy; mkdir -p $P; cp /tmp/health.txt $P/health-before.txt; cp $O/baseline.json $P/facts.json
    run_swarmscope $P probe & SS=$!
    capture $P full
    wait $SS
    echo "${pre}healthy ok" >> $O/phases.txt
    mark "engine $V healthy captured"
    # ENGINE_PLAN (params.env, from vmlab.plan): "<label>=f1,f2 ..." - the newest engine runs every fault,
    # the others those whose rules differ between engines; without a plan, ENGINE_FAULTS (+ m from 28)
    faults=
    for p in ${ENGINE_PLAN:-}; do [ "${p%%=*}" = "$V" ] && faults=$(echo "${p#*=}" | tr ',' ' '); done
    if [ -z "$faults" ]; then
      faults=$ENGINE_FAULTS
      [ "${V%%.*}" -ge 28 ] && faults="$faults m-ingress-after-bridge"
    fi
    for F in $faults; do fault_phase $F $pre; done
  done
fi
# ---------------------------------------------------------------- the three-node mesh (issue 12)
# three swarm nodes inside this guest, each a dockerd in its own network, mount and UTS namespaces over a bridge
# (contrib/lab/swarmlab.py's multi-node lab), on the newest engine: whoami on two nodes, none on the third,
# VXLAN between them, real IPVS. guest/mesh3.py runs the phases; it only collects (swarmscope collect --json on
# each node) and proves with wget - the host judges the collections alone and together (tests/vm/test_vm_mesh3.py).
if [ "${MESH3:-1}" = 1 ]; then
  mark "mesh3 start"
  wipe_node > $O/setup/mesh3-wipe.txt 2>&1
  E3=; for E in ${ENGINES:-}; do E3=/engines/$E; done   # the newest engine (the last), else the image's own
  mkdir -p $O/phases/mesh3
  SWARMSCOPE_SRC=/src timeout 1500 $VENV/bin/python /tmp/scenario/mesh3.py --out $O/phases/mesh3 ${E3:+--engine $E3} \
    --faults "${MESH3_FAULTS:-}" > $O/setup/mesh3.log 2>&1
  echo "mesh3.py exit $?" >> $O/setup/mesh3.log
  mark "mesh3 done"
fi
mark scenario_done
touch $O/DONE
