"""Read the nftables ruleset of the calling thread's network namespace: ``nft -j list ruleset``.

Read only: ``list`` is the one nft command run (nft never writes unless told to add, delete, flush or
load a file). firewalld and ufw on current distributions write native nftables tables that
``iptables-save`` never shows; the tables iptables-nft made are in the listing too, and are told apart
by the parser (``NftTable.iptables``). A node without nft is normal: the read is recorded as skipped
with the reason, the ruleset as not available.
"""

from __future__ import annotations

from swarmscope.collect.runner import Recorder, which
from swarmscope.errors import ParseError
from swarmscope.model import NftRuleset, Provenance
from swarmscope.parse.nftables import parse_nft_json

ARGV = ["nft", "-j", "list", "ruleset"]
WHAT = "nft -j list ruleset"
NOT_INSTALLED = "nft is not installed (apt-get install nftables): native nftables rules are not read"


def read_nftables(rec: Recorder, namespace: str, timeout: float | None = None) -> NftRuleset:
    """The ruleset, parsed, with the JSON text as printed in ``raw``."""
    if which("nft") is None:
        rec.skipped(WHAT, namespace, NOT_INSTALLED, list(ARGV))
        return NftRuleset(available=False, reason=NOT_INSTALLED)
    res = rec.run(WHAT, namespace, list(ARGV), timeout=timeout)
    if res.status != "ok":
        return NftRuleset(available=False, reason=res.reason, raw=res.stdout)
    return parse_ruleset(rec, namespace, res.stdout)


def parse_ruleset(rec: Recorder, namespace: str, text: str) -> NftRuleset:
    """``text`` parsed; a parse failure recorded (and the text kept), never raised."""
    try:
        rs = parse_nft_json(text)
    except ParseError as exc:
        rec.add(Provenance(what=f"{WHAT} (parse)", namespace=namespace, status="failed", argv=list(ARGV),
                           reason=f"parse error: {exc}"))
        return NftRuleset(available=False, reason=f"could not parse the output: {exc}", raw=text)
    rs.raw = text
    return rs
