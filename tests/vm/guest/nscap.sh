#!/bin/bash
# nscap.sh OUTDIR [host] - raw, read-only captures of the network namespace this runs in (the scenario
# runs it under `nsenter --net=...`).  Each file holds exactly the command's output (stdout+stderr);
# OUTDIR/commands.txt says which command made which file and its exit status.
od=$1; role=${2:-ns}
mkdir -p "$od"
c() { # file cmd...
  local f=$1; shift
  "$@" > "$od/$f" 2>&1
  echo "$f: $* (exit $?)" >> "$od/commands.txt"
}
c iptables-save.txt          iptables-save
c iptables-legacy-save.txt   iptables-legacy-save
c ipvsadm-Ln.txt             ipvsadm -Ln
c ipvsadm-S-n.txt            ipvsadm -S -n
c proc-net-ip_vs.txt         cat /proc/net/ip_vs
c ip-d-addr.txt              ip -d addr
c ip-link.txt                ip link
c ip-route.txt               ip route
keys="net.ipv4.ip_forward net.ipv4.vs.conntrack net.ipv4.vs.conn_reuse_mode net.ipv4.vs.expire_nodest_conn net.ipv4.vs.expire_quiescent_template"
for f in /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/conf/*/route_localnet; do
  k=${f#/proc/sys/}; keys="$keys ${k//\//.}"
done
[ "$role" = host ] && keys="$keys net.bridge.bridge-nf-call-iptables"
c sysctl.txt                 sysctl -e $keys
if [ "$role" = host ]; then
  # what decides whether the mesh's kernel modules and iptables extensions are usable (issue 16's i, j):
  # loaded modules, the module indexes' lines for the mesh's modules, the xtables directory's files
  rel=$(uname -r)
  c kernel-release.txt       uname -r
  c proc-modules.txt         cat /proc/modules
  c modules-dep-mesh.txt     grep -E '/(ip_vs|xt_|nf_nat|nf_conntrack)[^/]*\.ko' /lib/modules/$rel/modules.dep
  c modules-builtin-mesh.txt grep -E '/(ip_vs|xt_|nf_nat|nf_conntrack)[^/]*\.ko' /lib/modules/$rel/modules.builtin
  c xtables-ls.txt           sh -c 'for d in /usr/lib/*/xtables /usr/lib/xtables /lib/xtables; do [ -d $d ] && { echo "$d:"; ls -1 $d; }; done'
fi
