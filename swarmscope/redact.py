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

import hashlib
import hmac
import ipaddress
import os
import re
from typing import Any, Optional

from swarmscope.model import Snapshot

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

_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![\d.])")
_IPV4_BARE = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:.])([0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})(?:/(\d{1,3}))?(?![0-9A-Za-z:.])")
_MAC = re.compile(r"(?<![0-9A-Fa-f:])([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})(?![0-9A-Fa-f:])")
_PROC_ADDR = re.compile(r"(?<![0-9A-Za-z])([0-9A-F]{8}):([0-9A-F]{4})(?![0-9A-Za-z])")  # /proc/net/ip_vs
_ID = re.compile(r"(?<![0-9A-Za-z])([0-9a-z]{4,64})(?![0-9A-Za-z])")
_TOKENISH = re.compile(
    r"^(?:gh[pousr]_|github_pat_|glpat-|xox[abposr]-|AKIA|ASIA|eyJ|sk-|SG\.|AIza)|"  # well-known token prefixes
    r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9+/=_\-.]{20,}$"  # long and mixed: a key, a password, a hash
)

_PRIVATE4 = [(ipaddress.ip_network(n), p) for n, p in
             (("10.0.0.0/8", 8), ("172.16.0.0/12", 12), ("192.168.0.0/16", 16), ("100.64.0.0/10", 10),
              ("169.254.0.0/16", 16))]
_KEEP4 = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "224.0.0.0/4")]
_PUBLIC4_TO = 0xF0000000  # 240.0.0.0/4
_KEEP6 = [ipaddress.ip_network(n) for n in ("ff00::/8",)]
_PREFIX6 = [(ipaddress.ip_network(n), p) for n, p in (("fe80::/10", 10), ("fc00::/7", 7))]
_PUBLIC6_TO = int(ipaddress.IPv6Address("2001:db8::"))


def _is_mask4(v: int) -> bool:
    inv = (~v) & 0xFFFFFFFF
    return v >> 24 == 0xFF and (inv & (inv + 1)) == 0


class Redactor:
    """Consistent pseudonyms under one key; ``learn`` every snapshot before mapping any."""

    def __init__(self, key: Optional[bytes] = None, keep_names: bool = False, seed: Optional[str] = None):
        if seed is not None:
            key = hashlib.sha256(b"swarmscope-redact:" + seed.encode()).digest()
        self.key = key if key is not None else os.urandom(32)
        self.keep_names = keep_names
        self._bitcache: dict[tuple, int] = {}
        self._names: dict[str, str] = {}  # original -> substitute (hostnames, services, networks, ...)
        self._pending: dict[str, set[str]] = {}  # kind -> originals, numbered in finish()
        self._ids: dict[str, str] = {}  # registered id or id prefix -> alphabet
        self._images: dict[str, str] = {}
        self._name_re: Optional[re.Pattern] = None
        self._image_re: Optional[re.Pattern] = None
        # what was actually substituted, for the owner's map
        self.used: dict[str, dict[str, str]] = {"addresses": {}, "names": {}, "ids": {}, "macs": {}, "images": {}, "tokens": {}}

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

    def cidr(self, addr: str, plen: Optional[int], family: int) -> str:
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
        b = bytes(int(x, 16) for x in mac.split(":"))
        if b in (b"\x00" * 6, b"\xff" * 6) or b[0] & 1:
            return mac
        ip4 = ".".join(str(x) for x in b[2:])
        new4 = self.ipv4(ip4) if b[:2] == b"\x02\x42" else ip4
        if new4 != ip4:  # an endpoint MAC derived from its address follows the address
            nb = b[:2] + bytes(int(x) for x in new4.split("."))
        else:  # any other MAC (bridges' 02:42 MACs are random; their bytes may look like a kept address)
            h = self._prf("mac", b.hex())
            nb = bytes([(h[0] & 0xFC) | (b[0] & 0x03)]) + h[1:6]
        out = ":".join(f"{x:02x}" for x in nb)
        if mac.isupper():
            out = out.upper()
        self.used["macs"][mac] = out
        return out

    # ------------------------------------------------------------------ ids

    def ident(self, token: str, alphabet: Optional[str] = None) -> str:
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

    def _register_id(self, value: Optional[str], alphabet: Optional[str] = None) -> None:
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

    def _register_name(self, kind: str, value: Optional[str]) -> None:
        if not value:
            return
        value = value.lstrip("/")
        if not value or value in KEEP_NAMES or value in self._names:
            return
        if kind in ("svc", "net", "stack") and self.keep_names:
            return
        self._pending.setdefault(kind, set()).add(value)

    def _register_container_name(self, value: Optional[str], services: set[str]) -> None:
        if not value:
            return
        v = value.lstrip("/")
        parts = v.split(".")
        if len(parts) >= 3 and parts[0] in services:
            return  # <service>.<slot|node id>.<task id>: the parts are mapped on their own
        if v in KEEP_NAMES or v.startswith(("gateway_", "lb-", "lb_")) or v.endswith("-endpoint") or v.endswith("-sbox"):
            return  # names Docker gives its own endpoints, made of ids and network names
        self._register_name("ctr", v)

    def _register_image(self, image: Optional[str]) -> None:
        if not image or image in self._images:
            return
        ref, _, digest = image.partition("@")
        tag = ""
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            ref, tag = ref.rsplit(":", 1)
        parts = ref.split("/")
        registry = None
        if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            registry = parts.pop(0)
        official = registry in (None, "docker.io", "index.docker.io") and (len(parts) == 1 or (len(parts) == 2 and parts[0] == "library"))
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

    def learn(self, snaps: list[Snapshot]) -> "Redactor":
        """Gather every name and id of ``snaps`` (all of them, before mapping any)."""
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
            self._register_name("node", n.hostname)
            if n.hostname and "." in n.hostname:
                self._register_name("node", n.hostname.split(".")[0])
            self._register_id(n.node_id)
            d = s.docker
            for sn in d.nodes:
                self._register_name("node", sn.hostname)
                self._register_id(sn.id)
            for svc in d.services:
                self._register_name("svc", svc.name)
                self._register_id(svc.id)
                for nid in svc.networks:
                    self._register_id(nid)
                for v in svc.vips:
                    self._register_id(v.network_id)
                self._register_image(svc.image)
                for k, v in svc.labels.items():
                    if k == "com.docker.stack.namespace":
                        self._register_name("stack", v)
                    elif k == "com.docker.stack.image":
                        self._register_image(v)
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
                    self._register_name("node", p.name)
            for c in d.containers:
                self._register_id(c.id)
                self._register_id(c.sandbox_id)
                self._register_id(c.service_id)
                self._register_id(c.task_id)
                self._register_name("svc", c.service_name)
                self._register_container_name(c.name, services)
                if c.sandbox_key:
                    self._register_id(os.path.basename(c.sandbox_key))
                for cn in c.networks:
                    self._register_id(cn.network_id)
                    self._register_id(cn.endpoint_id)
                    self._register_name("net", cn.network_name)
            for ns in s.namespaces:
                if ns.kind == "container":
                    self._register_id(ns.name, HEX)
                elif ns.kind in ("lb", "overlay"):
                    self._register_id(ns.name.split("_", 1)[-1].split("-", 1)[-1], B36)
                self._register_id(ns.network_id)
                self._register_id(ns.container_id)
                self._register_id(ns.task_id)
                self._register_name("net", ns.network_name)
                self._register_name("svc", ns.service_name)
                self._register_container_name(ns.container_name, services)
            for a in s.dns:
                self._register_name("svc", a.service)
                self._register_name("net", a.network_name)
                self._register_id(a.network_id)
        self._finish()
        return self

    def _finish(self) -> None:
        for kind, values in sorted(self._pending.items()):
            fresh = [v for v in values if v not in self._names]
            fresh.sort(key=lambda v: self._prf("order", kind, v))
            for i, v in enumerate(fresh, 1):
                self._names[v] = f"{kind}-{i}.invalid" if kind == "registry" else f"{kind}-{i}"
        self._pending.clear()
        alts = sorted(self._names, key=len, reverse=True)
        self._name_re = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, alts)) + r")(?![A-Za-z0-9])") if alts else None
        imgs = sorted(self._images, key=len, reverse=True)
        self._image_re = re.compile(r"(?<![A-Za-z0-9./:@-])(" + "|".join(map(re.escape, imgs)) + r")(?![A-Za-z0-9/:@])") if imgs else None

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
        if names and self._image_re is not None:
            s = self._image_re.sub(lambda m: self._img(m.group(1)), s)
        if names and self._name_re is not None:
            s = self._name_re.sub(lambda m: self.name(m.group(1)), s)
        if "." in s:
            s = _IPV4.sub(lambda m: self.cidr(m.group(1), int(m.group(2)) if m.group(2) else None, 4)
                          + (f"/{m.group(2)}" if m.group(2) else ""), s)
        if s.count(":") >= 2:
            s = _MAC.sub(lambda m: self.mac(m.group(1)), s)
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
        return f"{int(ipaddress.IPv4Address(new)):08X}:{m.group(2)}"

    def label_value(self, key: str, value: str) -> str:
        if key == "com.docker.stack.image":
            return self._img(value) if value in self._images else self.text(value)
        if _TOKENISH.search(value) and value not in self._names:
            return self.token(value)
        return self.text(value)

    # ------------------------------------------------------------------ trees

    def tree(self, obj: Any, field: str = "", names: bool = True, in_list: bool = False) -> Any:
        """Redact JSON-shaped data (to_dict output): strings by field, and the keys of maps."""
        if isinstance(obj, dict):
            keymap = field in MAP_FIELDS and not in_list
            out = {}
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
        return Snapshot.from_dict(self.tree(snap.to_dict()))

    def mapping(self) -> dict:
        """What was substituted for what: for the owner only, never for the bundle."""
        return {
            "warning": "this file maps pseudonyms back to real addresses and names: keep it private",
            **{k: dict(sorted(v.items())) for k, v in self.used.items()},
        }


def redact_snapshots(snaps: list[Snapshot], keep_names: bool = False, seed: Optional[str] = None,
                     key: Optional[bytes] = None) -> tuple[list[Snapshot], Redactor]:
    r = Redactor(key=key, keep_names=keep_names, seed=seed).learn(snaps)
    return [r.snapshot(s) for s in snaps], r
