"""``sampan api-resources`` and ``sampan version`` against a real control
service: the served kinds in kubectl's columns, and both versions."""

from __future__ import annotations

from tests.cli import sampan


def test_api_resources_lists_every_kind_in_kubectl_columns(capsys, control_server):
    result = sampan(capsys, control_server, "api-resources")
    assert result.code == 0
    assert result.lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in result.lines[1:]}
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert rows["leases"] == ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    assert rows["clusterroles"] == ["clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"]
    assert list(rows)[-1] == "roles", "kinds outside the core group come last, by group"


def test_api_resources_can_list_names_only(capsys, control_server):
    names = sampan(capsys, control_server, "api-resources", "-o", "name", "--namespaced=false").lines
    assert names[:2] == ["namespaces", "nodes"], "the core group first, without a group suffix"
    assert names[-2:] == ["clusterrolebindings.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io"]


def test_version_prints_client_and_server_versions(capsys, control_server):
    result = sampan(capsys, control_server, "version")
    assert result.code == 0
    assert result.lines[0] == "Client Version: v0.1.0"
    assert result.lines[1].startswith("Server Version: ")
