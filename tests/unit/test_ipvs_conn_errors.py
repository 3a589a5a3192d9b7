"""The connection-table parsers fail with ParseError (a TypeError escaped before: they built it wrongly)."""

import pytest

from swarmscope.errors import ParseError
from swarmscope.parse.ipvs_conn import parse_ip_vs_conn, parse_ipvsadm_timeout


@pytest.mark.parametrize("text, lineno, reason", [
    ("", 1, "not an ip_vs_conn table"),
    ("IP Virtual Server version 1.2.1\n", 1, "not an ip_vs_conn table"),
    ("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\nTCP 0A000001 1F40\n",
     2, "fewer than 9 fields"),
    ("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
     "TCP 0A000001 1F40 0AXX0002 1F40 0A000003 1F40 ESTABLISHED 899\n", 2, "does not read"),
])
def test_a_bad_connection_table_is_a_parse_error(text, lineno, reason):
    with pytest.raises(ParseError) as exc:
        parse_ip_vs_conn(text)
    assert exc.value.what == "ip_vs_conn" and exc.value.lineno == lineno and reason in exc.value.reason


def test_no_timeout_line_is_a_parse_error():
    with pytest.raises(ParseError, match="no 'Timeout"):
        parse_ipvsadm_timeout("IP Virtual Server version 1.2.1 (size=4096)\n")
