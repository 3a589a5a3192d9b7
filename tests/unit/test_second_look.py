"""The collector's second look: DNS is asked after the API view is read, so a task that starts in
between is in DNS and not in the view. Where DNS holds an address the view does not, the view's
address-holding parts are read again and what is new is added (a worker judged alone during a
rolling update reported such a task as an 'extra' DNS answer on the three-node lab)."""

from __future__ import annotations

import copy
import json

import rawsnap

from swarmscope.collect import docker_api
from swarmscope.collect.runner import Recorder
from swarmscope.model import DnsAnswer

APPNET = json.loads(rawsnap._strip_comment(
    (rawsnap.LAB_VM / "with-overlay" / "docker-network-inspect-v-appnet.txt").read_text()))[0]
NEW_TASK = {"Name": "whoami.3.newtask0000000000000000000", "EndpointID": "e" * 64, "EndpointIP": "10.0.1.9",
            "Info": {"Host IP": "192.168.76.16"}}


class FakeApi:
    """The Docker SDK's APIClient calls collect_view makes, answering from captured output; ``later``
    is what the engine answers from the second call on (a task started in between)."""

    def __init__(self, first: dict, later: dict):
        self.answers = [first, later]
        self.calls: list[str] = []

    def _now(self, what: str) -> dict:
        self.calls.append(what)
        return self.answers[0 if self.calls.count(what) == 1 else 1]

    def networks(self):
        return [{"Id": APPNET["Id"], "Name": "appnet", "Driver": "overlay"}]

    def inspect_network(self, nid, verbose=False):
        return self._now("inspect_network")

    def containers(self, all=False):
        self.calls.append("containers")
        return []

    def inspect_container(self, cid):
        raise AssertionError("no container listed")


def _worker_info():
    return docker_api.EngineInfo(hostname="w1", node_id="n1", node_addr="192.168.76.15", swarm_state="active",
                                 is_manager=False, engine_version="20.10.24", api_version="1.41", os="Debian",
                                 kernel="6.1.0")


def _answer(addresses):
    return DnsAnswer("whoami", APPNET["Id"], "appnet", "tasks.whoami", "lb_odns2ld5k", "ok", addresses)


def test_an_address_dns_holds_and_the_view_does_not_is_read_again_and_added():
    later = copy.deepcopy(APPNET)
    later["Services"]["whoami"]["Tasks"].append(NEW_TASK)
    api, rec, info = FakeApi(APPNET, later), Recorder(timeout=5), _worker_info()
    view = docker_api.collect_view(api, info, rec)
    answers = [_answer(["10.0.1.3", "10.0.1.5", "10.0.1.9"])]
    assert docker_api.unexplained_answers(view, answers) == {APPNET["Id"]: {"10.0.1.9"}}

    assert docker_api.second_look(api, info, view, {APPNET["Id"]}, rec) == 1
    eps = view.networks[0].services["whoami"].tasks
    assert [e.endpoint_ip for e in eps] == ["10.0.1.3", "10.0.1.5", "10.0.1.9"]  # added, nothing dropped
    assert docker_api.unexplained_answers(view, answers) == {}
    assert any(p.what == "docker:second look: network inspect -v appnet" for p in rec.entries)


def test_what_the_second_read_lacks_is_kept_and_a_still_unexplained_address_stays_so():
    """A task gone by the second read keeps its first-read entry; a DNS record the engine's own view
    never holds (a stale record) is still unexplained afterwards, so the correlator judges it."""
    later = copy.deepcopy(APPNET)
    later["Services"]["whoami"]["Tasks"] = later["Services"]["whoami"]["Tasks"][:1]
    api, rec, info = FakeApi(APPNET, later), Recorder(timeout=5), _worker_info()
    view = docker_api.collect_view(api, info, rec)
    answers = [_answer(["10.0.1.3", "10.0.1.5", "10.0.1.77"])]
    assert docker_api.second_look(api, info, view, {APPNET["Id"]}, rec) == 0
    assert [e.endpoint_ip for e in view.networks[0].services["whoami"].tasks] == ["10.0.1.3", "10.0.1.5"]
    assert docker_api.unexplained_answers(view, answers) == {APPNET["Id"]: {"10.0.1.77"}}


def test_the_vip_and_the_engines_own_endpoints_are_known():
    api, rec, info = FakeApi(APPNET, APPNET), Recorder(timeout=5), _worker_info()
    view = docker_api.collect_view(api, info, rec)
    vip = DnsAnswer("whoami", APPNET["Id"], "appnet", "whoami", "lb_odns2ld5k", "ok", ["10.0.1.2"])
    failed = DnsAnswer("whoami", APPNET["Id"], "appnet", "tasks.whoami", "lb_odns2ld5k", "timeout", [])
    assert docker_api.unexplained_answers(view, [vip, failed, _answer(["10.0.1.3", "10.0.1.5"])]) == {}
