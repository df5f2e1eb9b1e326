"""``sampan get services|endpoints|endpointslices``, ``sampan describe service`` and ``sampan expose``,
end to end against a real control service process with its controllers running.

Covers: a NodePort and a ClusterIP Service applied from a manifest print
kubectl's table (the allocated cluster IP, ``80:30080/TCP``); a Service
without a selector shows its hand-written Endpoints in ``get endpoints``
and ``describe``, while a Service with a selector gets Endpoints and a
slice from the endpoints controller; ``expose deployment/NAME`` makes a
Service selecting the Deployment's pods, with the given or the
introspected container ports, ``--dry-run=client`` creates nothing, and
what cannot be exposed is refused in one line; ``sampan control
--service-cidr/--service-node-port-range`` set where addresses come from,
and a bad value stops it with the flag named.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.cli import sampan
from tests.support.control import ControlServer

MANIFESTS = Path(__file__).parent.parent / "api" / "manifests"
DEADLINE_SECONDS = 15

SERVICES = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata:
      name: web
    spec:
      type: NodePort
      selector:
        app: web
      ports:
      - port: 80
        targetPort: 8080
        nodePort: 30080
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: db
    spec:
      clusterIP: 10.96.0.53
      ports:
      - name: postgres
        port: 5432
    ---
    apiVersion: v1
    kind: Endpoints
    metadata:
      name: db
    subsets:
    - addresses:
      - ip: 192.0.2.10
      ports:
      - name: postgres
        port: 5432
    """)


def until(check, *, deadline: float = DEADLINE_SECONDS):
    """Poll check() until it returns something true."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.1)


@pytest.fixture
def services(capsys, control_server):
    assert sampan(capsys, control_server, "apply", "-f", "-", stdin=SERVICES).code == 0
    return control_server


def test_get_services_prints_kubectls_table(capsys, services):
    result = sampan(capsys, services, "get", "services", "-o", "wide")

    assert result.code == 0
    assert result.lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    rows = {line.split()[0]: line.split() for line in result.lines[1:]}
    assert rows["db"][1:5] == ["ClusterIP", "10.96.0.53", "<none>", "5432/TCP"]
    assert rows["db"][-1] == "<none>"
    web = rows["web"]
    assert (web[1], web[3], web[4], web[-1]) == ("NodePort", "<none>", "80:30080/TCP", "app=web")
    assert ipaddress.ip_address(web[2]) in ipaddress.ip_network("10.96.0.0/12")


def test_get_endpoints_shows_hand_written_and_controller_made_endpoints(capsys, services):
    def listed():
        result = sampan(capsys, services, "get", "endpoints")
        rows = {line.split()[0]: line.split() for line in result.lines[1:]}
        return "web" in rows and rows

    rows = until(listed)
    assert rows["db"][1] == "192.0.2.10:5432"
    assert rows["web"][1] == "<none>"  # a selector, but no pod yet

    def sliced():
        result = sampan(capsys, services, "get", "endpointslices")
        return len(result.lines) > 1 and result.lines
    lines = until(sliced)
    assert lines[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert lines[1].split()[0].startswith("web-") and lines[1].split()[1:4] == ["IPv4", "<unset>", "<unset>"]


def test_describe_service_shows_its_endpoints(capsys, services):
    result = sampan(capsys, services, "describe", "service", "db")

    assert result.code == 0
    lines = [" ".join(line.split()) for line in result.lines]
    assert "Name: db" in lines and "IP: 10.96.0.53" in lines and "Port: postgres 5432/TCP" in lines
    assert "Endpoints: 192.0.2.10:5432" in lines


@pytest.fixture
def deployment(capsys, control_server):
    assert sampan(capsys, control_server, "apply", "-f", str(MANIFESTS / "nginx-deployment.yaml")).code == 0
    return control_server


def service_json(capsys, server, name: str) -> dict:
    result = sampan(capsys, server, "get", "service", name, "-o", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_expose_deployment_makes_a_service_for_its_pods(capsys, deployment):
    result = sampan(capsys, deployment, "expose", "deployment/nginx-deployment", "--port", "80",
                    "--target-port", "8080", "--type", "NodePort", "--name", "web")

    assert (result.code, result.out) == (0, "service/web exposed\n")
    spec = service_json(capsys, deployment, "web")["spec"]
    assert spec["selector"] == {"app": "nginx"} and spec["type"] == "NodePort"
    [port] = spec["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")
    assert 30000 <= port["nodePort"] <= 32767


def test_expose_without_a_port_takes_the_container_ports(capsys, deployment):
    result = sampan(capsys, deployment, "expose", "deployment", "nginx-deployment")

    assert result.code == 0
    service = service_json(capsys, deployment, "nginx-deployment")
    assert service["metadata"]["labels"] == {"app": "nginx"}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, 80)]


def test_expose_with_dry_run_creates_nothing(capsys, deployment):
    result = sampan(capsys, deployment, "expose", "deployment/nginx-deployment", "--port", "80", "--dry-run",
                    "client", "-o", "json")

    assert result.code == 0
    assert json.loads(result.out)["spec"]["selector"] == {"app": "nginx"}
    missing = sampan(capsys, deployment, "get", "service", "nginx-deployment")
    assert missing.code == 1 and 'services "nginx-deployment" not found' in missing.err


@pytest.mark.parametrize(("argv", "error"), [
    (("expose", "deployment/nope", "--port", "80"),
     'Error from server (NotFound): deployments "nope" not found'),
    (("expose", "configmap/settings", "--port", "80"),
     "error: cannot expose a ConfigMap: only Deployments, ReplicaSets, Pods and Services can be exposed"),
    (("expose", "deployment/nginx-deployment", "--port", "80", "--type", "Magic"),
     'The Service "nginx-deployment" is invalid: spec.type: Unsupported value: "Magic": supported values: '
     '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
])
def test_expose_refuses_in_one_line(capsys, deployment, argv, error):
    result = sampan(capsys, deployment, *argv)
    assert result.code == 1
    assert result.err.strip() == error


def test_the_service_ranges_are_flags_of_the_control_service(capsys, tmp_path):
    server = ControlServer(tmp_path / "control", extra_args=("--service-cidr", "10.200.0.0/24",
                                                             "--service-node-port-range", "31000-31099")).start()
    try:
        manifest = SERVICES.split("---")[0]
        assert sampan(capsys, server, "apply", "-f", "-", stdin=manifest.replace("30080", "31050")).code == 0
        web = service_json(capsys, server, "web")["spec"]
        assert ipaddress.ip_address(web["clusterIP"]) in ipaddress.ip_network("10.200.0.0/24")
        refused = sampan(capsys, server, "apply", "-f", "-",
                         stdin=manifest.replace("name: web", "name: other"))
        assert refused.code == 1
        assert refused.err.strip().endswith("spec.ports[0].nodePort: Invalid value: 30080: provided port is not "
                                            "in the valid range. The range of valid ports is 31000-31099")
    finally:
        server.kill()


def test_a_bad_service_cidr_stops_the_control_service(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "control.cli.main", "control", "--insecure-plaintext", "--store", f"sqlite:///{tmp_path}/state.db",
         "--listen", "127.0.0.1:0", "--metrics-listen", "", "--service-cidr", "10.96.0.0/33"],
        capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "--service-cidr: Invalid value: '10.96.0.0/33'" in result.stderr
