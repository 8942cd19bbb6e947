"""Facts parsed from the gathering script's output, named and typed as Ansible's."""

from __future__ import annotations

from agent.facts import here, parse, uses_facts

ROCKY = """id=rocky
id_like=rhel centos fedora
version_id=9.3
codename=
architecture=aarch64
kernel=5.14.0-362.el9.aarch64
hostname=db1
cpus=8
memtotal_kb=16310148
ipv4=10.0.0.7
"""


def test_a_family_comes_from_id_like_and_numbers_are_numbers() -> None:
    assert parse(ROCKY) == {
        "os_family": "RedHat", "distribution": "Rocky", "distribution_version": "9.3",
        "distribution_major_version": "9", "distribution_release": "", "architecture": "aarch64",
        "kernel": "5.14.0-362.el9.aarch64", "processor_vcpus": 8, "memtotal_mb": 15927,
        "hostname": "db1", "default_ipv4": "10.0.0.7"}
    ubuntu = parse("id=ubuntu\nid_like=debian\nversion_id=24.04\ncodename=noble\n")
    assert (ubuntu["os_family"], ubuntu["distribution"], ubuntu["processor_vcpus"]) == (
        "Debian", "Ubuntu", 0)


def test_this_machines_facts_stand_in_for_validation() -> None:
    facts = here()
    assert facts["os_family"] and facts["processor_vcpus"] >= 1 and facts["memtotal_mb"] > 0


def test_a_policy_uses_facts_when_a_string_names_them() -> None:
    assert uses_facts([{"tasks": [{"when": "facts.os_family == 'Debian'"}]}])
    assert not uses_facts([{"tasks": [{"files.line": {"line": "factsheet", "path": "/x"}}]}])
