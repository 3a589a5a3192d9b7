"""The VM tier's three-node mesh, judged again from its captures (no VM): the same tests as
tests/vm/test_vm_mesh3.py, run on tests/fixtures/vm-mesh3/ (exported from a VM run with
`python3 tests/vm/vmlab.py export-mesh3 RUN_OUT`; its README says which run). Every node's own
`collect --json` of a real cross-node mesh on an ip_vs kernel (engine 28.5.2), healthy and with each fault,
and the wget proofs made at the same time: every new version of the correlator is held to them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

VM_TESTS = Path(__file__).resolve().parents[1] / "vm"
sys.path.insert(0, str(VM_TESTS))

import test_vm_mesh3 as vm  # noqa: E402
import vmlab  # noqa: E402

CAPTURES = vmlab.MESH3_FIXTURES


@pytest.fixture(scope="module")
def vm_out() -> Path:
    if not (CAPTURES / "phases" / "mesh3" / "healthy").is_dir():
        pytest.fail(f"no captures in {CAPTURES}")
    return CAPTURES


# the VM tier's own tests, on the captures (their parameters: the faults of the stage)
test_mesh3_stage_ran_every_planned_phase = vm.test_mesh3_stage_ran_every_planned_phase
test_healthy_every_node_answers_from_tasks_on_other_nodes = vm.test_healthy_every_node_answers_from_tasks_on_other_nodes
test_healthy_each_node_judged_alone_has_no_finding = vm.test_healthy_each_node_judged_alone_has_no_finding
test_healthy_swarm_judged_together_every_hop_ok = vm.test_healthy_swarm_judged_together_every_hop_ok
test_healthy_probes_from_the_manager_all_connect = vm.test_healthy_probes_from_the_manager_all_connect
test_fault_named_on_the_right_node = vm.test_fault_named_on_the_right_node
test_fault_leaves_the_other_nodes_alone = vm.test_fault_leaves_the_other_nodes_alone
test_fault_what_wget_proves = vm.test_fault_what_wget_proves
test_underlay_fault_only_the_probes_see = vm.test_underlay_fault_only_the_probes_see


def test_the_captures_are_every_fault_of_the_stage():
    ran = {ln.split()[0] for ln in (CAPTURES / "phases" / "mesh3" / "phases.txt").read_text().splitlines() if ln.strip()}
    assert ran == {"healthy", *vmlab.mesh3_module().ALL_FAULTS}


#: fault w from a second VM run, where the node dropping gossip lost the others' tasks too (its README)
W2 = CAPTURES.parent / "vm-mesh3-w2"


@pytest.mark.parametrize("check", [vm.test_fault_named_on_the_right_node, vm.test_fault_leaves_the_other_nodes_alone])
def test_gossip_dropped_where_the_node_itself_lost_the_others_tasks(check):
    d = vm.phase(W2, "w-gossip-dropped")
    rc, doc = vm.together(d)
    assert "ipvs.backend-missing" in {f["id"] for f in doc["findings"] if "m3-worker1" in f["nodes"]}  # as captured
    check(W2, "w-gossip-dropped")
