"""``sampan control`` serves mutual TLS by default, as a real process.

``--cert-validity 10y`` gives ten-year leaves under the ten-year CA, and
``--tls-san`` names go into the server certificate. It writes the admin's
client config at start (--admin-config); with it
``sampan get nodes`` works (--config or $SAMPAN_CONFIG), without it the
plain-text client is refused. ``sampan certs issue-user`` gives a user a
working config whose certificate names them, and they may do only what RBAC
grants: PERMISSION_DENIED names the verb, resource and namespace. An agent
whose PKI directory holds its node certificates registers over mutual TLS,
and ``sampan logs`` reaches it through the control service's relay, which
dials the agent's own TLS server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Iterator

import pytest
from cryptography import x509

from control.auth.node_pki import NodePKI, issue_node
from control.auth.pki import ClusterPKI
from tests.support.control import ControlServer, free_port


@pytest.fixture(scope="module")
def secure(tmp_path_factory) -> Iterator[ControlServer]:
    server = ControlServer(tmp_path_factory.mktemp("secure") / "control", tls=True, extra_args=(
        "--leader-elect=false", "--cert-validity", "10y", "--tls-san", "api.sampan.example")).start()
    yield server
    server.kill()


@pytest.fixture
def home(tmp_path) -> dict[str, str]:
    """A shell's environment with no config but what a test gives it."""
    env = {k: v for k, v in os.environ.items() if k not in ("SAMPAN_CONFIG", "SAMPAN_SERVER")}
    (tmp_path / "home").mkdir()
    return {**env, "HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


def sampan(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "control.cli.main", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_the_admin_config_reaches_the_service_and_plain_text_does_not(secure, home):
    with_flag = sampan("--config", str(secure.admin_config), "get", "namespaces", env=home)
    assert with_flag.returncode == 0, with_flag.stderr
    assert "kube-system" in with_flag.stdout
    with_env = sampan("get", "nodes", env={**home, "SAMPAN_CONFIG": str(secure.admin_config)})
    assert with_env.returncode == 0, with_env.stderr
    without = sampan("get", "nodes", "--server", secure.address, env=home)
    assert without.returncode == 1
    assert without.stderr.startswith(f"error: cannot reach the control service at {secure.address}")
    assert "created ca, server, control-client, admin" in secure.log()


def test_cert_validity_10y_gives_ten_year_leaves_under_a_ten_year_ca(secure, home):
    checked = sampan("certs", "check-expiration", "--pki-dir", str(secure.pki_dir), env=home)
    assert checked.returncode == 0, checked.stderr
    rows = {line.split()[0]: line.split() for line in checked.stdout.splitlines() if line.strip()}
    for name in ("server", "control-client", "admin", "ca"):
        assert "9y" in rows[name], checked.stdout  # ShortHumanDuration of a little under ten years
    server = ClusterPKI(secure.pki_dir).load("server").cert
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days >= 3649
    names = [str(n.value) for n in server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    assert "api.sampan.example" in names and "127.0.0.1" in names


def test_an_issued_user_may_do_only_what_rbac_grants(secure, home, tmp_path):
    admin = {**home, "SAMPAN_CONFIG": str(secure.admin_config)}
    bob_config = tmp_path / "bob.config"
    issued = sampan("certs", "issue-user", "bob", "--group", "testers", "--pki-dir", str(secure.pki_dir),
                    "--server", secure.address, "--out", str(bob_config), env=home)
    assert issued.returncode == 0, issued.stderr
    bob = {**home, "SAMPAN_CONFIG": str(bob_config)}

    assert sampan("create", "namespace", "team", env=admin).returncode == 0
    refused = sampan("get", "configmaps", "-n", "team", env=bob)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(
        'Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource "configmaps" '
        'in API group "" in the namespace "team"'), refused.stderr

    granted = sampan("apply", "-f", "-", env=admin, stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: config-reader, namespace: team}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-reads-config, namespace: team}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: Role, name: config-reader, apiGroup: rbac.authorization.k8s.io}
""")
    assert granted.returncode == 0, granted.stderr
    deadline = time.monotonic() + 10
    while (listed := sampan("get", "configmaps", "-n", "team", env=bob)).returncode != 0:
        assert time.monotonic() < deadline, listed.stderr
        time.sleep(0.2)
    elsewhere = sampan("get", "configmaps", "-n", "default", env=bob)
    assert elsewhere.returncode == 1 and 'in the namespace "default"' in elsewhere.stderr
    writing = sampan("create", "configmap", "x", "--from-literal", "a=b", "-n", "team", env=bob)
    assert writing.returncode == 1 and 'cannot create resource "configmaps"' in writing.stderr


def test_an_agent_with_node_certificates_joins_and_serves_logs_over_mutual_tls(secure, home, tmp_path):
    admin = {**home, "SAMPAN_CONFIG": str(secure.admin_config)}
    node = f"tls-node-{free_port()}"
    node_pki = NodePKI(tmp_path / "agent-pki")
    issue_node(ClusterPKI(secure.pki_dir), node_pki, node_name=node, addresses=["127.0.0.1"])
    log_path = tmp_path / "agent.log"
    with open(log_path, "ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "control.cli.main", "agent", "--server", secure.address, "--node-name", node,
             "--pki-dir", str(node_pki.directory), "--data-dir", str(tmp_path / "agent"), "--runtime", "process",
             "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--pod-routes", "false"],
            stdout=log, stderr=subprocess.STDOUT, env=home, start_new_session=True)
    try:
        applied = sampan("apply", "-f", "-", env=admin, stdin=f"""
apiVersion: v1
kind: Pod
metadata: {{name: greeter, namespace: default}}
spec:
  nodeName: {node}
  containers: [{{name: main, image: busybox, command: [sh, -c, "echo hello over tls; sleep 600"]}}]
""")
        assert applied.returncode == 0, applied.stderr
        deadline = time.monotonic() + 30
        while "hello over tls" not in (logs := sampan("logs", "greeter", env=admin)).stdout:
            assert agent.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"{logs.stderr}\n{log_path.read_text()}"
            time.sleep(0.3)
        assert "mutual TLS, the control service only" in log_path.read_text()
        deleted = sampan("delete", "pod", "greeter", "--grace-period", "1", env=admin)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def test_an_agent_without_credentials_names_its_pki_dir_and_how_to_join(home, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "control.cli.main", "agent", "--server", "127.0.0.1:1", "--node-name", "n",
         "--pki-dir", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "agent"), "--runtime", "process",
         "--listen", "127.0.0.1:0", "--metrics-listen", "", "--pod-routes", "false"],
        env=home, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"--pki-dir {tmp_path / 'empty'}" in done.stderr and "--token" in done.stderr, done.stderr
