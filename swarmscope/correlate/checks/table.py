"""The catalogue: every check, in the order they run.

Order matters for the output: findings are merged in this order, so it is the order of a hop's
``findings`` and of a root cause's ``explained`` (``swarmscope findings`` lists them sorted by id).

A row is either
- ``HopCheck(id, severity, title, hint, hop=KEY, when=STATUSES, paths="ports"|"vips"|"all")``: fires where
  a path's hop KEY (``paths/`` builds and judges it; a tuple names alternatives) has one of STATUSES;
  ``per_service=False`` makes one finding per network instead of per service;
- ``BackendCheck(id, severity, title, hint, state=STATE)``: fires for every IPVS real server in STATE;
- ``FactCheck(id, severity, title, hint, facts=PICK, detail=SAY)``: fires for every fact PICK returns from
  a node's data-plane facts (``swarmscope.facts.NodeFacts``), with the fact's evidence;
- a function check: ``@check(id, severity, title, hint)`` on a function in a topic module (node, ingress,
  vip, dns, network, causes), listed here by name.

A check that judges a fact the path map or the facts layer already has (a hop's status, a real server's
state, a Jump, Dnat, Mark, Snat or IPVS service) is one literal row here plus its test; a check that needs
more than one fact at a time is a function in its topic module plus its name here.
"""

from __future__ import annotations

from swarmscope.correlate import probes
from swarmscope.correlate.checks import causes, dns, ingress, network, node, overlay, vip
from swarmscope.correlate.checks.registry import BackendCheck, CheckSpec, HopCheck
from swarmscope.model import BackendState, HopStatus, Severity

ERROR, WARNING = Severity.ERROR, Severity.WARNING
MISSING, MISMATCH = HopStatus.MISSING, HopStatus.MISMATCH

CHECKS: tuple[CheckSpec, ...] = (
    node.check_no_ipvs,
    node.check_host_ip_forward,
    node.check_route_localnet,
    node.check_ipvs_sysctls,
    node.check_ipvs_no_conntrack,
    node.check_node_down,
    node.check_engine_newer,
    node.check_engine_unsupported,
    node.check_backend_split,
    node.check_other_backend_drops,
    node.check_swarm_ports_blocked,
    ingress.check_chain_missing,
    ingress.check_jump_missing,
    ingress.check_jump_duplicated,
    HopCheck(
        "ingress.jump-shadowed", ERROR,
        "a rule ends the published port's packets before Docker's jump",
        "A rule in nat PREROUTING/OUTPUT ahead of `-m addrtype --dst-type LOCAL -j DOCKER-INGRESS` (an "
        "ACCEPT/RETURN, or its own DNAT/REDIRECT of the port) keeps the port's packets from ever reaching "
        "DOCKER-INGRESS. Remove it or move it after Docker's jump (the evidence names it); duplicates of "
        "Docker's own jump are harmless, a rule like this is not.",
        hop="host.jump", when=(MISMATCH,), paths="ports",
    ),
    HopCheck(
        "ingress.dnat-missing", ERROR,
        "no DNAT for the published port in DOCKER-INGRESS",
        "Restart dockerd on the node (or `docker service update --force SERVICE`) to re-program the port; "
        "check for a firewall reload that flushed the nat table.",
        hop="host.dnat", when=(MISSING,), paths="ports",
    ),
    HopCheck(
        "ingress.dnat-wrong-target", ERROR,
        "DNAT for the published port points to the wrong address",
        "The DNAT target must be ingress_sbox's address on docker_gwbridge; stale rules from an older "
        "docker_gwbridge survive. Restart dockerd on the node to flush and re-program DOCKER-INGRESS.",
        hop="host.dnat", when=(MISMATCH,), paths="ports",
    ),
    HopCheck(
        "ingress.filter-accept-missing", ERROR,
        "filter rules do not accept the published port",
        "filter DOCKER-INGRESS must ACCEPT --dport and --sport ESTABLISHED for the port and be reached from "
        "FORWARD; restart dockerd to re-program it.",
        hop="host.filter", when=(MISSING,), paths="ports",
    ),
    HopCheck(
        "ingress.forward-dropped", ERROR,
        "filter FORWARD drops the published port's traffic",
        "Walking filter FORWARD as the kernel does, the port's new connections (or their replies) hit the rule in "
        "the evidence before DOCKER-INGRESS accepts them: an operator's DROP in DOCKER-USER, or a chain order "
        "Docker does not make (on 28.x DOCKER-INGRESS must come first in DOCKER-FORWARD, before DOCKER-BRIDGE's "
        "`! -i docker_gwbridge -o docker_gwbridge -j DROP`), or a native nftables chain on the forward hook "
        "(firewalld, ufw, an operator's table: its drop is final whatever iptables accepts; the evidence names "
        "the rule and its handle). Delete or narrow that rule, or restart dockerd to re-create its chains in order.",
        hop="host.forward", when=(MISMATCH, MISSING), paths="ports",
    ),
    HopCheck(
        "ingress.forward-order", WARNING,
        "FORWARD reaches DOCKER-INGRESS before DOCKER-USER",
        "DOCKER-USER must be the first jump in FORWARD so user rules apply to published ports; re-insert "
        "`-I FORWARD -j DOCKER-USER` or restart dockerd.",
        hop="host.filter", when=(MISMATCH,), paths="ports",
    ),
    HopCheck(
        "ingress.sandbox-missing", ERROR,
        "ingress_sbox namespace is missing",
        "The node's ingress sandbox is gone: restart dockerd; if it persists, leave and re-join the swarm "
        "or recreate the ingress network.",
        hop="ingress.sbox", when=(MISSING,), paths="ports",
    ),
    HopCheck(
        "ingress.mark-missing", ERROR,
        "no MARK rule for the published port in ingress_sbox",
        "ingress_sbox mangle PREROUTING must mark the port with the service's LocalLBIndex; "
        "`docker service update --force SERVICE` re-programs it.",
        hop="ingress.mark", when=(MISSING,), paths="ports",
    ),
    HopCheck(
        "ingress.mark-mismatch", ERROR,
        "ingress_sbox marks the port with a mark that is not the node's LocalLBIndex",
        "The rule is stale (left from an earlier service using the port); `docker service update --force SERVICE` "
        "or restarting dockerd re-programs it.",
        hop="ingress.mark", when=(MISMATCH,), paths="ports",
    ),
    HopCheck(
        "ingress.ipvs-service-missing", ERROR,
        "no IPVS service for the port's firewall mark in ingress_sbox",
        "`docker service update --force SERVICE` re-creates the IPVS service; check dockerd's log for "
        "'Failed to create a new service for vip'.",
        hop="ingress.ipvs", when=(MISSING,), paths="ports",
    ),
    HopCheck(
        "ingress.snat-missing", ERROR,
        "no IPVS SNAT rule in ingress_sbox",
        "Without `-m ipvs --ipvs -d <ingress subnet> -j SNAT` replies from tasks on other nodes bypass the "
        "sandbox; restart dockerd on the node.",
        hop="ingress.snat", when=(MISSING, MISMATCH), paths="ports",
    ),
    HopCheck(
        "ingress.vip-alias-missing", WARNING,
        "the service's ingress VIP is not on ingress_sbox",
        "dockerd adds the VIP as a /32 alias when it creates the IPVS service; "
        "`docker service update --force SERVICE`.",
        hop="ingress.vip_alias", when=(MISSING,), paths="ports",
    ),
    HopCheck(
        "ingress.vip-mark-missing", WARNING,
        "no INPUT MARK for the ingress VIP in ingress_sbox",
        "`docker service update --force SERVICE` re-programs it.",
        hop="ingress.vip_mark", when=(MISSING, MISMATCH), paths="ports",
    ),
    HopCheck(
        "host.port-unbound", ERROR,
        "host-mode published port is not bound on a node that runs a task",
        "Check the task's container: with mode=host, dockerd maps the port only while the task runs; "
        "`docker service ps SERVICE` shows why it is not.",
        hop="host.bound", when=(MISSING,), paths="ports",
    ),
    ingress.check_sandbox_incomplete,
    ingress.check_redirect,
    vip.check_lb_missing,
    HopCheck(
        "link.down", ERROR,
        "a link on the path is down",
        "An interface a packet must cross (a sandbox's veth, its other end on docker_gwbridge or the overlay "
        "bridge, or the bridge itself) is down: `ip link set DEV up` in the namespace the evidence names "
        "(`nsenter --net=/var/run/docker/netns/NAME`), then find what took it down; restarting dockerd "
        "recreates the sandboxes.",
        hop=("ingress.links", "lb.links"), when=(MISSING,), paths="all", per_service=False,
    ),
    HopCheck(
        "lb.ip-forward-off", ERROR,
        "IP forwarding is off in the load-balancer namespace",
        "dockerd never writes ip_forward in lb_ namespaces: each copies the host's value when it is created. Turn "
        "it on now with `nsenter --net=/var/run/docker/netns/lb_<id> sysctl -w net.ipv4.ip_forward=1`, and keep "
        "net.ipv4.ip_forward=1 on the host (/etc/sysctl.d) so the next lb_ namespace starts with it; restarting "
        "dockerd does not fix a host whose own setting turns it off.",
        hop="lb.ip_forward", when=(MISMATCH,), paths="vips", per_service=False,
    ),
    HopCheck(
        "ingress.ip-forward-off", ERROR,
        "IP forwarding is off in ingress_sbox",
        "Published-port traffic is routed through ingress_sbox to the tasks; dockerd never writes ip_forward "
        "there (the sandbox copies the host's value when it is created). `nsenter --net=/var/run/docker/netns/"
        "ingress_sbox sysctl -w net.ipv4.ip_forward=1`, and keep net.ipv4.ip_forward=1 on the host (/etc/sysctl.d).",
        hop="ingress.ip_forward", when=(MISMATCH,), paths="ports", per_service=False,
    ),
    HopCheck(
        "vip.alias-missing", ERROR,
        "the service VIP is not on its lb_ namespace",
        "The /32 alias lets the lb_ sandbox accept VIP traffic; `docker service update --force SERVICE` re-adds it.",
        hop="lb.vip_alias", when=(MISSING, MISMATCH), paths="vips",
    ),
    HopCheck(
        "vip.mark-missing", ERROR,
        "no MARK rule for the service VIP",
        "lb_ mangle INPUT must mark the VIP with the service's LocalLBIndex; `docker service update --force SERVICE`.",
        hop="lb.mark", when=(MISSING,), paths="vips",
    ),
    HopCheck(
        "vip.mark-mismatch", ERROR,
        "the VIP is marked with a value that is not the node's LocalLBIndex",
        "A stale rule from an earlier service; `docker service update --force SERVICE` or restart dockerd.",
        hop="lb.mark", when=(MISMATCH,), paths="vips",
    ),
    HopCheck(
        "vip.ipvs-service-missing", ERROR,
        "no IPVS service for the VIP's firewall mark",
        "`docker service update --force SERVICE` re-creates it; check dockerd's log for IPVS errors.",
        hop="lb.ipvs", when=(MISSING,), paths="vips",
    ),
    HopCheck(
        "vip.snat-missing", ERROR,
        "no IPVS SNAT rule in the lb_ namespace",
        "Restart dockerd on the node to re-program the lb_ sandbox.",
        hop="lb.snat", when=(MISSING, MISMATCH), paths="vips",
    ),
    vip.check_no_usable_backend,
    BackendCheck(
        "ipvs.backend-stale", ERROR,
        "IPVS real server with no running task (stale)",
        "Connections are sent to an address nothing answers on. `docker service update --force SERVICE` "
        "rebuilds the table; if it comes back, restart dockerd on the node.",
        state=BackendState.STALE,
    ),
    BackendCheck(
        "ipvs.backend-missing", ERROR,
        "running task missing from IPVS",
        "The task gets no traffic through the VIP/port on this node; `docker service update --force SERVICE`, "
        "and look for 'Failed to create real server' in dockerd's log.",
        state=BackendState.MISSING,
    ),
    BackendCheck(
        "ipvs.weight-zero", WARNING,
        "running task has IPVS weight 0",
        "Weight 0 is how dockerd drains a task it is removing; on a running task it gets no new connections. "
        "`docker service update --force SERVICE` resets it.",
        state=BackendState.WEIGHT0,
    ),
    BackendCheck(
        "ipvs.weight-zero-lingering", WARNING,
        "weight-0 real server lingers after its task is gone",
        "dockerd should delete drained real servers; a lingering one is harmless for traffic but shows the "
        "engine missed the removal. Restart dockerd on the node if it persists.",
        state=BackendState.LINGERING,
    ),
    BackendCheck(
        "ipvs.backend-foreign", ERROR,
        "IPVS real server belongs to another service",
        "Traffic for this service reaches another service's task: an address was reused while the old "
        "entry stayed. `docker service update --force` both services.",
        state=BackendState.FOREIGN,
    ),
    HopCheck(
        "dns.vip-mismatch", ERROR,
        "DNS for the service name does not answer its VIP",
        "The embedded resolver (127.0.0.11) answers what the node's service discovery holds; a wrong or missing "
        "answer means gossip is out of sync: check `docker network inspect -v NETWORK` on the node.",
        hop="dns.vip", when=(MISSING, MISMATCH), paths="vips",
    ),
    HopCheck(
        "dns.rr-mismatch", ERROR,
        "DNS round-robin answers differ from the running tasks",
        "With endpoint_mode dnsrr the resolver must answer every running task's address; check "
        "`docker network inspect -v NETWORK` on the node.",
        hop="dns.rr", when=(MISSING, MISMATCH), paths="vips",
    ),
    dns.check_dns_tasks,
    dns.check_dns_duplicates,
    dns.check_dns_differ,
    network.check_replicas,
    network.check_duplicate_ip,
    network.check_lb_endpoint_left_behind,
    network.check_subnet_overlap,
    network.check_overlay_missing,
    network.check_vxlan,
    overlay.check_peer_missing,
    overlay.check_peer_wrong_vtep,
    overlay.check_peer_stale,
    overlay.check_mtu,
    overlay.check_vxlan_source,
    network.check_port_conflict,
    network.check_gwbridge,
    network.check_gossip_incomplete,
    network.check_subnet_full,
    network.check_subnet_nearly_full,
    causes.check_scheduler_missing,
    causes.check_netfilter_module_missing,
    causes.check_no_ipvs_match,
    causes.check_conn_stale_udp,
    causes.check_idle_timeout,
    # --probe: set after the checks by correlate/probes.py (the row is the catalogue's; it never fires here)
    HopCheck(probes.FINDING, probes.SEVERITY, probes.TITLE, probes.HINT, hop=probes.HOP_KEYS,
             when=(HopStatus.SUSPECT,), paths="all"),
)

REGISTRY: list[CheckSpec] = list(CHECKS)
SEVERITY: dict[str, Severity] = {c.id: c.severity for c in CHECKS}  # finding id -> severity
