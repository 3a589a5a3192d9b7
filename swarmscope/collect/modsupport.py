"""Kernel modules and iptables extensions the mesh needs: usable or not, established read-only.

Nothing here loads a module or runs a command that could: a module is *loaded* when
``/sys/module/NAME`` is there (with ``initstate`` live; a built-in one has no ``initstate``),
*built in* when ``/lib/modules/<release>/modules.builtin`` lists it, *on disk* when
``modules.dep`` lists it (the kernel loads it on demand: ip_vs asks for ``ip_vs_<scheduler>``,
iptables for ``xt_<match>``), else *absent* -- but only when those index files could be read;
without them (a container without /lib/modules) the state is *unknown* and nothing is judged.
"""

from __future__ import annotations

import glob
import os
import shutil

from swarmscope.model import KernelModule, XtablesExtension

#: modules dockerd needs once ip_vs is there: the round-robin scheduler of every IPVS service it creates,
#: the MARK target (mangle rules), NAT (DNAT/SNAT/REDIRECT) and the ipvs match of the SNAT rule
MESH_MODULES = ("ip_vs_rr", "xt_mark", "nf_nat", "xt_ipvs")


def _index_has(path: str, name: str) -> bool | None:
    """Whether an index (modules.builtin / modules.dep) lists NAME.ko; None when unreadable."""
    want = f"/{name}.ko"
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                entry = line.split(":", 1)[0].strip()
                base = "/" + entry.rsplit("/", 1)[-1]
                if base == want or base.startswith(want + "."):  # .ko, .ko.xz, .ko.zst, .ko.gz
                    return True
    except OSError:
        return None
    return False


def module_state(
    name: str, release: str, sys_module: str = "/sys/module", lib_modules: str = "/lib/modules"
) -> KernelModule:
    d = os.path.join(sys_module, name)
    if os.path.isdir(d):
        try:
            with open(os.path.join(d, "initstate")) as fh:
                init = fh.read().strip()
        except OSError:
            init = None
        if init is None:
            return KernelModule(name, "builtin", f"{d} without initstate (built in)")
        return KernelModule(name, "loaded", f"{d} (initstate {init})")
    base = os.path.join(lib_modules, release)
    builtin = _index_has(os.path.join(base, "modules.builtin"), name)
    if builtin:
        return KernelModule(name, "builtin", f"{base}/modules.builtin")
    dep = _index_has(os.path.join(base, "modules.dep"), name)
    if dep:
        return KernelModule(name, "on-disk", f"{base}/modules.dep (loaded on demand)")
    if builtin is None and dep is None:
        # no index: look for the file itself under kernel/ (bounded walk of the netfilter trees)
        found = _find_ko(base, name)
        if found:
            return KernelModule(name, "on-disk", found)
        if not os.path.isdir(base):
            return KernelModule(name, "unknown", f"not loaded; {base} is not readable here")
        return KernelModule(name, "unknown", f"not loaded; no modules.builtin or modules.dep under {base}")
    return KernelModule(name, "absent", f"not in {d}, {base}/modules.builtin or {base}/modules.dep")


def _find_ko(base: str, name: str) -> str | None:
    for sub in ("kernel/net/netfilter", "kernel/net/netfilter/ipvs", "kernel/net/ipv4/netfilter"):
        hits = glob.glob(os.path.join(base, sub, f"{name}.ko*"))
        if hits:
            return hits[0]
    return None


def mesh_modules(release: str, **kw) -> list[KernelModule]:
    return [module_state(n, release, **kw) for n in MESH_MODULES]


def xtables_dirs(iptables: str | None = None) -> list[str]:
    """Where iptables looks for its extensions: XTABLES_LIBDIR, next to the binary's prefix, the usual ones."""
    dirs: list[str] = []
    env = os.environ.get("XTABLES_LIBDIR")
    if env:
        dirs.extend(p for p in env.split(":") if p)
    binary = iptables or shutil.which("iptables", path="/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin")
    prefixes = []
    if binary:
        real = os.path.realpath(binary)
        prefixes.append(os.path.dirname(os.path.dirname(real)))  # /usr/sbin/xtables-nft-multi -> /usr
    prefixes += ["/usr", "/usr/local", "/"]
    for pre in prefixes:
        for pat in ("lib/*/xtables", "lib64/xtables", "lib/xtables"):
            dirs.extend(sorted(glob.glob(os.path.join(pre, pat))))
    return list(dict.fromkeys(os.path.normpath(d) for d in dirs))


def xtables_extension(name: str, dirs: list[str] | None = None) -> XtablesExtension:
    """Whether libxt_NAME.so is in an xtables directory that holds extensions at all.

    A directory with no libxt_*.so (or none found) says nothing: the extensions may be built
    into the binary (a static build), so the answer is unknown, not absent.
    """
    dirs = xtables_dirs() if dirs is None else dirs
    with_ext = [d for d in dirs if glob.glob(os.path.join(d, "libxt_*.so"))]
    for d in with_ext:
        p = os.path.join(d, f"libxt_{name}.so")
        if os.path.exists(p):
            return XtablesExtension(name, True, p, "found")
    if not with_ext:
        return XtablesExtension(
            name,
            None,
            ", ".join(dirs) or None,
            "no xtables directory with extensions found (a static build cannot be judged)",
        )
    return XtablesExtension(name, False, ", ".join(with_ext), f"no libxt_{name}.so in {', '.join(with_ext)}")
