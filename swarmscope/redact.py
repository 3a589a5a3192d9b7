"""Redaction: consistent pseudonyms for node snapshots, applied after collection.

A separate layer: ``Redactor.learn(snapshots)`` gathers every name and id the
snapshots hold, then ``Redactor.snapshot(snap)`` returns a redacted copy. The
correlator and the renderers then work on the copies, so every hop, finding,
picture and file made from them carries the same substitutes. Pure: no I/O.

What is mapped, and how (one random key per run, or ``--redact-seed``):

- IPv4 addresses: a keyed, prefix-preserving permutation (each bit flipped by a
  keyed function of the bits before it; the first free bit always, so no
  address is its own substitute), so two addresses that share their
  first n bits still share exactly n bits: subnets, containment, VIP/task joins
  survive at every prefix length. The leading bits that make a range private
  are kept (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16), so private
  stays private. Other (public) addresses go to 240.0.0.0/4 (reserved), their
  relations to each other kept in the low 28 bits. Kept as they are:
  0.0.0.0, 255.255.255.255, netmasks, 127.0.0.0/8 (so 127.0.0.11, the embedded
  resolver), 224.0.0.0/4. In a CIDR whose host bits are all 0 (a network) or
  all 1 (a broadcast), those host bits stay so.
- IPv6: the same, keeping ::, ::1, ff00::/8, the fe80::/10 and fc00::/7
  prefixes; other addresses go to 2001:db8::/32.
- Swarm, container, network, endpoint and sandbox ids: a keyed character-wise
  prefix-preserving permutation in the id's own alphabet (hex or base 36), so
  the first k characters of a substitute are the substitute of the first k
  characters: ``lb_<9 chars>``, ``1-<10 chars>``, 12-char short ids and
  sandbox file names still join their full ids.
- Node hostnames -> ``node-N``; service, network and stack names -> ``svc-N``,
  ``net-N``, ``stack-N`` (kept with keep_names); other container names ->
  ``ctr-N``; image references -> ``image-N[:tag]`` (official one-word images
  kept), registries -> ``registry-N.invalid``. N is ordered by a keyed hash.
- MAC addresses: Docker's ``02:42:<IPv4>`` become ``02:42:<mapped IPv4>``;
  others keep their group/local bits, the rest from a keyed hash.
- Label values and image tags that look like tokens -> ``token-<hash>``.

Enumerations (states, kinds, modes, protocols, chain targets) and the names
Docker gives its own objects (ingress, docker_gwbridge, bridge, host, none,
ingress_sbox, ingress-endpoint) are kept: they carry meaning and identify no one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import os
import re
import types
import typing
from typing import Any

from swarmscope.model import NsKind, Snapshot
from swarmscope.redaction_kinds import IMAGE, KEEP, LABELS, NONAME, OPTION, PROCESS, RAW, TEXT, declaration

HEX = "0123456789abcdef"
B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: names Docker gives its own objects: they carry meaning, not identity
KEEP_NAMES = frozenset({"ingress", "docker_gwbridge", "bridge", "host", "none", "localhost", "ingress-endpoint",
                        "ingress-sbox", "ingress_sbox", "docker0"})
#: fields whose values are enumerations or versions: never rewritten
ENUM_FIELDS = frozenset({
    "status", "state", "kind", "mode", "endpoint_mode", "protocol", "role", "desired_state", "driver", "scope",
    "availability", "forward", "scheduler", "publish_mode", "backend", "engine_backend", "other_backend", "source",
    "schema", "version", "tool_version", "collected_at", "api_version", "swarm_state", "manager_reachability",
    "opt", "module", "target", "chain", "policy", "process", "family",
})
#: subtrees where Docker never writes names (iptables, IPVS, links): only addresses, ids and MACs are mapped there
#: fields that are maps keyed by a name (Network.services, sysctls, TaskInfo.addresses, failed_nodes...)
MAP_FIELDS = frozenset({"services", "sysctls", "addresses", "vips"})
NO_NAME_FIELDS = frozenset({"iptables", "iptables_other", "ipvs", "interfaces", "sysctls", "routes", "listeners"})

# an address may end a sentence or begin a host name ("10.0.1.3.", "10.0.1.3.nip.io"); "1.2.3.4.5" is no address
_IPV4 = re.compile(r"(?<!\d)(?<!\d\.)(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2})(?!\d))?(?!\.?\d)")
_IPV4_BARE = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:.])([0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})(?:/(\d{1,3}))?(?![0-9A-Za-z:.])")
_MAC = re.compile(r"(?<![0-9A-Fa-f:-])([0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\2[0-9a-fA-F]{2}){4})(?![0-9A-Fa-f:-])")
_PROC_ADDR = re.compile(r"(?<![0-9A-Za-z])([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})(?![0-9A-Za-z])")  # /proc/net/*: either case
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_URL_CRED = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+)(?::([^/\s@]*))?@")
_KV_SECRET = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth|bearer)(\s*[=:]\s*|\s+)"
    r"(\"?)([^\s\"',;]{4,})"
)
_TOKEN_WORD = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_\w{16,}|glpat-[\w-]{16,}|xox[abposr]-[\w-]{10,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*|sk-[A-Za-z0-9_-]{16,}"
    r"|(?=[A-Za-z0-9+/_-]*[A-Z])(?=[A-Za-z0-9+/_-]*[a-z])(?=[A-Za-z0-9+/_-]*[0-9])[A-Za-z0-9+/_-]{24,}={0,2})"
    r"(?![A-Za-z0-9_\-])"
)
#: quoted free text in iptables rules (comments, log prefixes) and the options that carry it
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FREE_OPT = re.compile(r"(--comment|--log-prefix|--nflog-prefix)(\s+)([^\s\"]+)")
FREE_TEXT_OPTS = frozenset({"--comment", "--log-prefix", "--nflog-prefix"})
#: processes whose names the findings use (host.port-conflict): kept; any other process gets a pseudonym
KEEP_PROCESSES = frozenset({"dockerd", "docker-proxy", "containerd", "containerd-shim", "docker-init"})
_ID = re.compile(r"(?<![0-9A-Za-z])([0-9a-z]{4,64})(?![0-9A-Za-z])")
_TOKENISH = re.compile(
    r"^(?:gh[pousr]_|github_pat_|glpat-|xox[abposr]-|AKIA|ASIA|eyJ|sk-|SG\.|AIza)|"  # well-known token prefixes
    r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9+/=_\-.]{20,}$"  # long and mixed: a key, a password, a hash
)

_PRIVATE4 = [
    (ipaddress.ip_network(n), p)
    for n, p in (
        ("10.0.0.0/8", 8),
        ("172.16.0.0/12", 12),
        ("192.168.0.0/16", 16),
        ("100.64.0.0/10", 10),
        ("169.254.0.0/16", 16),
    )
]
_KEEP4 = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "224.0.0.0/4")]
_PUBLIC4_TO = 0xF0000000  # 240.0.0.0/4
_KEEP6 = [ipaddress.ip_network(n) for n in ("ff00::/8",)]
_PREFIX6 = [(ipaddress.ip_network(n), p) for n, p in (("fe80::/10", 10), ("fc00::/7", 7))]
_PUBLIC6_TO = int(ipaddress.IPv6Address("2001:db8::"))


# --------------------------------------------------------------------------- how each field is redacted
#
# Every field of the snapshot model (swarmscope/model.py) that can hold text declares how it is redacted
# in its own declaration (redact_as, swarmscope/redaction_kinds.py), and a map how its keys are; the model
# refuses to import with a field that does not. _policy reads the declarations once per class. A key no
# field declares (none, from to_dict) is treated as free text, the strictest policy.

#: how a field that declares nothing is redacted: its strings as free text, the keys of its maps kept
_UNDECLARED: tuple[str, str] = (TEXT, KEEP)
_POLICY_CACHE: dict[type, dict[str, tuple[str, str]]] = {}


def _policy(cls: type) -> dict[str, tuple[str, str]]:
    """Field name -> (how its strings are redacted, how the keys of its maps are), from the model's
    declarations; computed once per class."""
    policy = _POLICY_CACHE.get(cls)
    if policy is None:
        policy = {}
        for f in dataclasses.fields(cls):
            d = declaration(f)
            policy[f.name] = (d.how or TEXT, d.keys or KEEP) if d is not None else _UNDECLARED
        _POLICY_CACHE[cls] = policy
    return policy


#: a dump's failed_nodes entries (gather/gather.py)
FAILED_NODE: dict[str, str] = {"node": TEXT, "node_id": TEXT, "kind": KEEP, "reason": TEXT}

_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _is_mask4(v: int) -> bool:
    inv = (~v) & 0xFFFFFFFF
    return v >> 24 == 0xFF and (inv & (inv + 1)) == 0


class Redactor:
    """Consistent pseudonyms under one key; ``learn`` every snapshot before mapping any."""

    def __init__(self, key: bytes | None = None, keep_names: bool = False, seed: str | None = None):
        if seed is not None:
            key = hashlib.sha256(b"swarmscope-redact:" + seed.encode()).digest()
        self.key = key if key is not None else os.urandom(32)
        self.keep_names = keep_names
        self._bitcache: dict[tuple, int] = {}
        self._names: dict[str, str] = {}  # original -> substitute (hostnames, services, networks, ...)
        self._pending: dict[str, set[str]] = {}  # kind -> originals, numbered in finish()
        self._ids: dict[str, str] = {}  # registered id or id prefix -> alphabet
        self._images: dict[str, str] = {}
        self._name_re: re.Pattern | None = None
        self._image_re: re.Pattern | None = None
        # what was actually substituted, for the owner's map
        self.used: dict[str, dict[str, str]] = {
            "addresses": {},
            "names": {},
            "ids": {},
            "macs": {},
            "images": {},
            "tokens": {},
        }

    # ------------------------------------------------------------------ keyed primitives

    def _prf(self, *parts: Any) -> bytes:
        return hmac.new(self.key, "\x1f".join(str(p) for p in parts).encode(), hashlib.sha256).digest()

    def _bit(self, family: int, length: int, prefix: int) -> int:
        k = (family, length, prefix)
        b = self._bitcache.get(k)
        if b is None:
            b = self._bitcache[k] = self._prf("bit", family, length, prefix)[0] & 1
        return b

    def _perm_bits(self, value: int, total: int, fixed: int, family: int) -> int:
        """Prefix-preserving keyed permutation of the bits after the first ``fixed``."""
        out = value >> (total - fixed) << (total - fixed) if fixed else 0
        for i in range(fixed, total):
            shift = total - 1 - i
            prefix = value >> (shift + 1)
            bit = (value >> shift) & 1
            # the first free bit always flips: no address is its own substitute, and the
            # substitutes of a range's usual lower half land in its upper half (and back)
            out |= (bit ^ (1 if i == fixed else self._bit(family, i, prefix))) << shift
        return out

    # ------------------------------------------------------------------ addresses

    def ipv4(self, addr: str) -> str:
        try:
            ip = ipaddress.IPv4Address(addr)
        except ValueError:
            return addr
        v = int(ip)
        if v in (0, 0xFFFFFFFF) or _is_mask4(v) or any(ip in n for n in _KEEP4):
            return addr
        for net, fixed in _PRIVATE4:
            if ip in net:
                new = self._perm_bits(v, 32, fixed, 4)
                break
        else:
            new = _PUBLIC4_TO | (self._perm_bits(v, 32, 4, 4) & 0x0FFFFFFF)
        out = str(ipaddress.IPv4Address(new))
        self.used["addresses"][addr] = out
        return out

    def ipv6(self, addr: str) -> str:
        try:
            ip = ipaddress.IPv6Address(addr)
        except ValueError:
            return addr
        v = int(ip)
        if v in (0, 1) or any(ip in n for n in _KEEP6):
            return addr
        if ip.ipv4_mapped is not None:
            return "::ffff:" + self.ipv4(str(ip.ipv4_mapped))
        for net, fixed in _PREFIX6:
            if ip in net:
                new = self._perm_bits(v, 128, fixed, 6)
                break
        else:
            new = _PUBLIC6_TO | (self._perm_bits(v, 128, 32, 6) & ((1 << 96) - 1))
        out = str(ipaddress.IPv6Address(new))
        self.used["addresses"][addr] = out
        return out

    def cidr(self, addr: str, plen: int | None, family: int) -> str:
        """An address with its prefix length: network and broadcast host parts stay so."""
        total = 32 if family == 4 else 128
        new = self.ipv4(addr) if family == 4 else self.ipv6(addr)
        if plen is None or new == addr or not 0 <= plen <= total:
            return new
        cls = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
        host_mask = (1 << (total - plen)) - 1
        old_v, new_v = int(cls(addr)), int(cls(new))
        if plen < total and old_v & host_mask in (0, host_mask):
            new_v = (new_v & ~host_mask) | (old_v & host_mask)
            new = str(cls(new_v))
            self.used["addresses"][addr + f"/{plen}"] = new + f"/{plen}"
        return new

    def mac(self, mac: str) -> str:
        sep = "-" if "-" in mac else ":"
        b = bytes(int(x, 16) for x in mac.split(sep))
        if b in (b"\x00" * 6, b"\xff" * 6) or b[0] & 1:
            return mac
        ip4 = ".".join(str(x) for x in b[2:])
        new4 = self.ipv4(ip4) if b[:2] == b"\x02\x42" else ip4
        if new4 != ip4:  # an endpoint MAC derived from its address follows the address
            nb = b[:2] + bytes(int(x) for x in new4.split("."))
        else:  # any other MAC (bridges' 02:42 MACs are random; their bytes may look like a kept address)
            h = self._prf("mac", b.hex())
            nb = bytes([(h[0] & 0xFC) | (b[0] & 0x03)]) + h[1:6]
        out = sep.join(f"{x:02x}" for x in nb)
        if mac.isupper():
            out = out.upper()
        self.used["macs"][mac] = out
        return out

    # ------------------------------------------------------------------ ids

    def ident(self, token: str, alphabet: str | None = None) -> str:
        """A keyed character-wise prefix-preserving permutation in the id's alphabet."""
        if not token:
            return token
        if alphabet is None:
            alphabet = self._ids.get(token) or (HEX if all(c in HEX for c in token) else B36)
        if any(c not in alphabet for c in token):
            return token
        out = []
        for i, c in enumerate(token):
            n = int.from_bytes(self._prf("id", len(alphabet), token[:i])[:4], "big")
            shift = 1 + n % (len(alphabet) - 1) if i == 0 else n % len(alphabet)  # never the id itself
            out.append(alphabet[(alphabet.index(c) + shift) % len(alphabet)])
        new = "".join(out)
        self.used["ids"][token] = new
        return new

    def _register_id(self, value: str | None, alphabet: str | None = None) -> None:
        if not value:
            return
        value = value.lstrip("/")
        if not re.fullmatch(r"[0-9a-z]+", value):
            return
        alphabet = alphabet or (HEX if all(c in HEX for c in value) and len(value) in (12, 64) else B36)
        for n in range(min(8, len(value)), len(value) + 1):
            self._ids.setdefault(value[:n], alphabet)

    def _id_token(self, m: re.Match) -> str:
        tok = m.group(1)
        if tok in self._ids:
            return self.ident(tok, self._ids[tok])
        has_digit = any(c.isdigit() for c in tok)
        has_alpha = any(c.isalpha() for c in tok)
        if len(tok) == 64 and all(c in HEX for c in tok):
            return self.ident(tok, HEX)
        if len(tok) == 25 and has_digit and has_alpha:
            return self.ident(tok, B36)
        if len(tok) == 12 and has_digit and has_alpha and all(c in HEX for c in tok):
            return self.ident(tok, HEX)
        return tok

    # ------------------------------------------------------------------ names

    def _register_name(self, kind: str, value: str | None) -> None:
        if not value:
            return
        value = value.lstrip("/")
        if not value or value in KEEP_NAMES or value in self._names:
            return
        if kind in ("svc", "net", "stack") and self.keep_names:
            return
        self._pending.setdefault(kind, set()).add(value)

    def _register_container_name(self, value: str | None, services: set[str]) -> None:
        if not value:
            return
        v = value.lstrip("/")
        parts = v.split(".")
        if len(parts) >= 3 and parts[0] in services:
            return  # <service>.<slot|node id>.<task id>: the parts are mapped on their own
        if (
            v in KEEP_NAMES
            or v.startswith(("gateway_", "lb-", "lb_"))
            or v.endswith("-endpoint")
            or v.endswith("-sbox")
        ):
            return  # names Docker gives its own endpoints, made of ids and network names
        self._register_name("ctr", v)

    def _register_image(self, image: str | None) -> None:
        if not image or image in self._images or not re.fullmatch(r"[A-Za-z0-9._/:@+-]+", image):
            return  # not an image reference: redacted as free text
        ref, _, digest = image.partition("@")
        tag = ""
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            ref, tag = ref.rsplit(":", 1)
        parts = ref.split("/")
        registry = None
        if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            registry = parts.pop(0)
        official = registry in (None, "docker.io", "index.docker.io") and (
            len(parts) == 1 or (len(parts) == 2 and parts[0] == "library")
        )
        if official:
            new = "/".join(parts)
        else:
            n = int.from_bytes(self._prf("image", ref)[:4], "big") % 100000
            new = f"image-{n}"
            if registry:
                self._register_name("registry", registry)
        if tag:
            new += ":" + (self.token(tag) if _TOKENISH.search(tag) else tag)
        if digest:
            algo, _, hexd = digest.partition(":")
            new += "@" + algo + ":" + self.ident(hexd, HEX)
        self._images[image] = new
        if tag and not digest:
            pass
        if ref != image:
            # the bare repository too, as error messages print it ("No such image: repo:tag")
            self._images.setdefault(image.split("@")[0], new.split("@")[0])

    def token(self, value: str) -> str:
        out = "token-" + self._prf("token", value)[:6].hex()
        self.used["tokens"][value] = out
        return out

    def _register_host(self, hostname: str | None) -> None:
        """A host name, its first label and every domain suffix of it (``corp.example.com``, ``example.com``)."""
        if not hostname:
            return
        self._register_name("node", hostname)
        labels = hostname.split(".")
        if len(labels) > 1:
            self._register_name("node", labels[0])
            for i in range(1, len(labels) - 1):
                self._register_name("domain", ".".join(labels[i:]))

    def learn(self, snaps: list[Snapshot], failed_nodes: list[dict] | None = None) -> Redactor:
        """Gather every name and id of ``snaps`` and of the failed nodes (all of them, before mapping any)."""
        for f in failed_nodes or []:
            if isinstance(f, dict):
                self._register_host(f.get("node") if isinstance(f.get("node"), str) else None)
                self._register_id(f.get("node_id") if isinstance(f.get("node_id"), str) else None)
        services: set[str] = set()
        for s in snaps:
            d = s.docker
            services.update(x.name for x in d.services)
            services.update(t.service_name for t in d.tasks if t.service_name)
            services.update(c.service_name for c in d.containers if c.service_name)
            for net in d.networks:
                services.update(net.services)
        for s in snaps:
            n = s.node
            self._register_host(n.hostname)
            self._register_id(n.node_id)
            d = s.docker
            for sn in d.nodes:
                self._register_host(sn.hostname)
                self._register_id(sn.id)
            for svc in d.services:
                self._register_name("svc", svc.name)
                self._register_id(svc.id)
                for nid in svc.networks:
                    self._register_id(nid)
                for v in svc.vips:
                    self._register_id(v.network_id)
                self._register_image(svc.image)
                for k, lv in svc.labels.items():
                    if k == "com.docker.stack.namespace":
                        self._register_name("stack", lv)
                    elif k == "com.docker.stack.image":
                        self._register_image(lv)
            for t in d.tasks:
                self._register_name("svc", t.service_name)
                for x in (t.id, t.service_id, t.node_id, t.container_id):
                    self._register_id(x)
                for a in t.attachments:
                    self._register_id(a.network_id)
                    self._register_name("net", a.network_name)
            for net in d.networks:
                self._register_name("net", net.name)
                self._register_id(net.id)
                for c in net.containers:
                    self._register_id(c.key)
                    self._register_id(c.endpoint_id)
                    self._register_container_name(c.name, services)
                for sname, ns in net.services.items():
                    self._register_name("svc", sname)
                    for te in ns.tasks:
                        self._register_id(te.endpoint_id)
                        self._register_container_name(te.name, services)
                for p in net.peers:
                    self._register_host(p.name)
            for ctr in d.containers:
                self._register_id(ctr.id)
                self._register_id(ctr.sandbox_id)
                self._register_id(ctr.service_id)
                self._register_id(ctr.task_id)
                self._register_name("svc", ctr.service_name)
                self._register_container_name(ctr.name, services)
                if ctr.sandbox_key:
                    self._register_id(os.path.basename(ctr.sandbox_key))
                for cn in ctr.networks:
                    self._register_id(cn.network_id)
                    self._register_id(cn.endpoint_id)
                    self._register_name("net", cn.network_name)
            for sns in s.namespaces:
                if sns.kind == NsKind.CONTAINER:
                    self._register_id(sns.name, HEX)
                elif sns.kind in (NsKind.LB, NsKind.OVERLAY):
                    self._register_id(sns.name.split("_", 1)[-1].split("-", 1)[-1], B36)
                self._register_id(sns.network_id)
                self._register_id(sns.container_id)
                self._register_id(sns.task_id)
                self._register_name("net", sns.network_name)
                self._register_name("svc", sns.service_name)
                self._register_container_name(sns.container_name, services)
            for ans in s.dns:
                self._register_name("svc", ans.service)
                self._register_name("net", ans.network_name)
                self._register_id(ans.network_id)
        self._finish()
        return self

    def _finish(self) -> None:
        for kind, values in sorted(self._pending.items()):
            fresh = [v for v in values if v not in self._names]
            fresh.sort(key=lambda v: self._prf("order", kind, v))
            for i, v in enumerate(fresh, 1):
                self._names[v] = f"{kind}-{i}.invalid" if kind in ("registry", "domain") else f"{kind}-{i}"
        self._pending.clear()
        alts = sorted(self._names, key=len, reverse=True)
        self._name_re = (
            re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, alts)) + r")(?![A-Za-z0-9])") if alts else None
        )
        imgs = sorted(self._images, key=len, reverse=True)
        self._image_re = (
            re.compile(r"(?<![A-Za-z0-9./:@-])(" + "|".join(map(re.escape, imgs)) + r")(?![A-Za-z0-9/:@])")
            if imgs
            else None
        )

    def name(self, value: str) -> str:
        """The substitute of a name (service, network, node...), or the name itself when it is kept."""
        new = self._names.get(value, value)
        if new != value:
            self.used["names"][value] = new
        return new

    # ------------------------------------------------------------------ text

    def text(self, s: str, names: bool = True) -> str:
        """Every address, MAC, id, image and (with names) name in a free text."""
        if not s:
            return s
        s = self.secrets(s)
        if names and self._image_re is not None:
            s = self._image_re.sub(lambda m: self._img(m.group(1)), s)
        if names and self._name_re is not None:
            s = self._name_re.sub(lambda m: self.name(m.group(1)), s)
        if "." in s:
            s = _IPV4.sub(
                lambda m: (
                    self.cidr(m.group(1), int(m.group(2)) if m.group(2) else None, 4)
                    + (f"/{m.group(2)}" if m.group(2) else "")
                ),
                s,
            )
        if s.count(":") >= 2 or s.count("-") >= 5:
            s = _MAC.sub(lambda m: self.mac(m.group(1)), s)
        if s.count(":") >= 2:
            s = _IPV6.sub(self._v6, s)
        if ":" in s:
            s = _PROC_ADDR.sub(self._proc, s)
        s = _ID.sub(self._id_token, s)
        return s

    def _img(self, image: str) -> str:
        new = self._images.get(image, image)
        if new != image:
            self.used["images"][image] = new
        return new

    def _v6(self, m: re.Match) -> str:
        text = m.group(1)
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return m.group(0)
        plen = int(m.group(2)) if m.group(2) else None
        return self.cidr(text, plen, 6) + (f"/{m.group(2)}" if m.group(2) else "")

    def _proc(self, m: re.Match) -> str:
        v = int(m.group(1), 16)
        new = self.ipv4(str(ipaddress.IPv4Address(v)))
        out = f"{int(ipaddress.IPv4Address(new)):08X}"
        return (out.lower() if m.group(1).islower() else out) + ":" + m.group(2)

    def secrets(self, s: str) -> str:
        """E-mail addresses, credentials in URLs, ``password=...``-style values and token-like words."""
        if "@" in s:
            s = _URL_CRED.sub(
                lambda m: m.group(1) + ("redacted:redacted@" if m.group(3) is not None else "redacted@"), s
            )
            s = _EMAIL.sub(lambda m: self._email(m.group(0)), s)
        s = _KV_SECRET.sub(lambda m: m.group(1) + m.group(2) + m.group(3) + self.token(m.group(4)), s)
        return _TOKEN_WORD.sub(lambda m: m.group(0) if m.group(0).startswith("token-") else self.token(m.group(0)), s)

    def _email(self, addr: str) -> str:
        out = "user-" + self._prf("email", addr)[:4].hex() + "@example.invalid"
        self.used["names"][addr] = out
        return out

    def raw(self, s: str) -> str:
        """Command output (iptables-save, ipvsadm, /proc): addresses, ids, MACs and secrets everywhere; names
        only in free text: comment lines, quoted words and the values of --comment and --log-prefix."""
        if not s:
            return s
        if self._name_re is not None:
            out = []
            for line in s.split("\n"):
                if line.lstrip().startswith("#"):
                    out.append(self._names_in(line))
                    continue
                line = _QUOTED.sub(lambda m: '"' + self._names_in(m.group(1)) + '"', line)
                line = _FREE_OPT.sub(lambda m: m.group(1) + m.group(2) + self._names_in(m.group(3)), line)
                out.append(line)
            s = "\n".join(out)
        return self.text(s, names=False)

    def _names_in(self, s: str) -> str:
        if self._image_re is not None:
            s = self._image_re.sub(lambda m: self._img(m.group(1)), s)
        return self._name_re.sub(lambda m: self.name(m.group(1)), s) if self._name_re is not None else s

    def process(self, name: str) -> str:
        if name in KEEP_PROCESSES:
            return name
        out = "process-" + self._prf("process", name)[:3].hex()
        self.used["names"][name] = out
        return out

    def label_key(self, key: str) -> str:
        """Label keys: Docker's own (com.docker.*) kept, any other replaced."""
        if key.startswith("com.docker."):
            return key
        out = "label-" + self._prf("label", key)[:4].hex()
        self.used["names"][key] = out
        return out

    def label_value(self, key: str, value: str) -> str:
        if key == "com.docker.stack.image":
            return self._img(value) if value in self._images else self.text(value)
        if _TOKENISH.search(value) and value not in self._names:
            return self.token(value)
        return self.text(value)

    # ------------------------------------------------------------------ the data model, field by field

    def _apply(self, how: str, value: str, sibling: dict | None = None) -> str:
        if how == KEEP:
            return value
        if how == TEXT:
            return self.text(value, True)
        if how == NONAME:
            return self.text(value, False)
        if how == RAW:
            return self.raw(value)
        if how == IMAGE:
            return self._img(value) if value in self._images else self.text(value)
        if how == PROCESS:
            return self.process(value)
        if how == OPTION:  # an iptables option's value: free text for --comment and the like
            opt = (sibling or {}).get("opt")
            return self.text(value, True) if opt in FREE_TEXT_OPTS else self.text(value, False)
        return self.text(value, True)  # an unknown policy: the strictest

    def _walk(self, tp: Any, value: Any, how: str, keys: str = KEEP, sibling: dict | None = None) -> Any:
        if value is None:
            return None
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            return self._walk(args[0] if len(args) == 1 else Any, value, how, keys, sibling)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
            return self._object(tp, value)
        if isinstance(value, list):
            item = (typing.get_args(tp) or (Any,))[0] if origin in (list, tuple) else Any
            return [self._walk(item, v, how, keys, sibling) for v in value]
        if isinstance(value, dict):
            vt = (typing.get_args(tp) or (str, Any))[1] if origin is dict else Any
            if how == LABELS:
                return {
                    self.label_key(k): self.label_value(k, v) if isinstance(v, str) else v for k, v in value.items()
                }
            return {
                (self._apply(keys, k) if isinstance(k, str) else k): self._walk(vt, v, how, keys, sibling)
                for k, v in value.items()
            }
        if isinstance(value, str):
            return self._apply(how, value, sibling)
        return value

    def _object(self, cls: type, data: dict) -> dict:
        policy = _policy(cls)
        hints = _type_hints(cls)
        out = {}
        for k, v in data.items():
            how, keys = policy.get(k, _UNDECLARED)
            out[k] = self._walk(hints.get(k, Any), v, how, keys, data)
        return out

    def failed_nodes(self, failed: list | None) -> list:
        """The failed nodes of a dump, each field as FAILED_NODE declares (unknown keys as free text)."""
        out = []
        for f in failed or []:
            if not isinstance(f, dict):
                out.append(self.tree(f))
                continue
            out.append(
                {
                    k: self._apply(FAILED_NODE.get(k, TEXT), v) if isinstance(v, str) else self.tree(v)
                    for k, v in f.items()
                }
            )
        return out

    # ------------------------------------------------------------------ trees

    def tree(self, obj: Any, field: str = "", names: bool = True, in_list: bool = False) -> Any:
        """Redact JSON-shaped data (to_dict output): strings by field, and the keys of maps."""
        if isinstance(obj, dict):
            keymap = field in MAP_FIELDS and not in_list
            out: dict[str, Any] = {}
            for k, v in obj.items():
                sub_names = names and k not in NO_NAME_FIELDS
                if k == "labels" and isinstance(v, dict):
                    out[k] = {lk: self.label_value(lk, lv) if isinstance(lv, str) else lv for lk, lv in v.items()}
                elif k == "image" and isinstance(v, str):
                    out[k] = self._img(v) if v in self._images else self.text(v, names)
                else:
                    out[self.text(k, names) if keymap else k] = self.tree(v, k, sub_names)
            return out
        if isinstance(obj, list):
            return [self.tree(v, field, names, True) for v in obj]
        if isinstance(obj, str):
            if field in ENUM_FIELDS:
                return obj
            return self.text(obj, names)
        return obj

    def snapshot(self, snap: Snapshot) -> Snapshot:
        return Snapshot.from_dict(self._object(Snapshot, snap.to_dict()))

    def mapping(self) -> dict:
        """What was substituted for what: for the owner only, never for the bundle."""
        return {
            "warning": "this file maps pseudonyms back to real addresses and names: keep it private",
            **{k: dict(sorted(v.items())) for k, v in self.used.items()},
        }


def redact_snapshots(
    snaps: list[Snapshot],
    keep_names: bool = False,
    seed: str | None = None,
    key: bytes | None = None,
    failed_nodes: list | None = None,
) -> tuple[list[Snapshot], Redactor]:
    r = Redactor(key=key, keep_names=keep_names, seed=seed).learn(snaps, failed_nodes)
    return [r.snapshot(s) for s in snaps], r


def write_map(path: str, redactor: Redactor) -> None:
    """Write the owner's map: always mode 600 (an existing file is replaced, not rewritten in place),
    never through a symbolic link."""
    import json
    import stat
    import tempfile

    from swarmscope.errors import SwarmscopeError, UsageError

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise SwarmscopeError(f"cannot write {path}: {exc.strerror}") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"--redact-map {path} is a symbolic link: give the path of a regular file (the map is never "
            "written through a link)"
        )
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(f"--redact-map {path} exists and is not a regular file")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".redact-map-", dir=directory)  # mode 600, a new inode
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(redactor.mapping(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise SwarmscopeError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
