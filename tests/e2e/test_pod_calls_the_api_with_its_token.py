"""A pod calls the API as its service account, over mutual TLS, end to end.

The parts are real: an in-process control service with TLS (its cluster CA,
RBAC, the node authorizer, service account tokens), and the whole node agent
on the process runtime with the node's own certificates signed by that CA.
A RoleBinding grants the namespace's default service account ``list pods``
there. The pod's container is a Python process that reads its token, CA and
namespace from the directory the agent gives it (the process runtime applies
no mounts, so it finds the directory in $SAMPAN_SERVICE_ACCOUNT_DIR instead of
at /var/run/secrets/kubernetes.io/serviceaccount), connects with only that
token (no client certificate of its own), lists the pods of its namespace
and prints their names, then tries to list the Secrets and prints the
refusal. The test reads what it printed through ``logs`` (the control
service relays it from the agent) and checks both.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from agent.pods.service_account import TOKEN_DIR_ENV
from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.api import manifest
from control.auth.node_pki import NodePKI, issue_node
from control.auth.pki import ClusterPKI
from control.client import Client, ClientCredentials
from tests.support.secure_control import secure_service
from tests.agent.pods.support import eventually
from tests.support.runtime_pods import UNSERVED_SCHEDULER, remove_everything

NODE = "token-node"
NAMESPACE = "shop"
RBAC = "rbac.authorization.k8s.io"
ACCOUNT_USER = f"system:serviceaccount:{NAMESPACE}:default"

# The container's program: an in-cluster client built from the service account's files alone.
CALLER = """
import asyncio, os, pathlib
from control.api import errors
from control.client import Client, ClientCredentials

async def main():
    directory = pathlib.Path(os.environ.get("SAMPAN_SERVICE_ACCOUNT_DIR",
                                            "/var/run/secrets/kubernetes.io/serviceaccount"))
    print("files:", directory, flush=True)
    token = (directory / "token").read_text()
    namespace = (directory / "namespace").read_text()
    credentials = ClientCredentials(ca=(directory / "ca.crt").read_bytes(), token=token)
    async with Client.connect(os.environ["SAMPAN_SERVER"], credentials=credentials, timeout=10) as api:
        pods, _ = await api.list("Pod", namespace=namespace)
        print("pods:", " ".join(sorted(pod.metadata.name for pod in pods)), flush=True)
        try:
            await api.list("Secret", namespace=namespace)
            print("secrets: listed", flush=True)
        except errors.ForbiddenError as err:
            print("secrets:", err.code.name, err.message, flush=True)

asyncio.run(main())
"""


@pytest.fixture
async def cluster(tmp_path: Path):
    """The control service with TLS, its admin client, and an agent for NODE with node certificates."""
    async with secure_service(tmp_path) as service:
        address = f"127.0.0.1:{service.port}"
        node_pki = NodePKI(tmp_path / "node-pki")
        issue_node(ClusterPKI(tmp_path / "pki"), node_pki, node_name=NODE, addresses=["127.0.0.1"])
        data_dir = tmp_path / "agent"
        agent = Agent(AgentConfig(server=address, node_name=NODE, data_dir=str(data_dir), runtime="process",
                                  node_ip="127.0.0.1", metrics_listen="", listen="127.0.0.1:0", pod_routes=False,
                                  tls=node_pki, backoff_initial=0.5, backoff_max=2.0))
        own = service.pki.load("admin")
        admin = Client.connect(address, timeout=10, credentials=ClientCredentials(
            ca=service.pki.ca_pem, cert=own.cert_pem, key=own.key_pem))
        try:
            await agent.start()
            yield admin, address
        finally:
            await admin.close()
            with contextlib.suppress(Exception):
                await agent.stop()
            # Pods outlive their agent by design: stop every process the test started.
            await remove_everything(ProcessRuntime(str(data_dir / "process-runtime")))


def _object(kind: str, name: str, api_version: str = "v1", **fields):
    return manifest.to_message({"apiVersion": api_version, "kind": kind,
                                "metadata": {"name": name, "namespace": NAMESPACE}, **fields})


async def _grant_pod_listing(admin: Client) -> None:
    await admin.create(_object("Role", "pod-lister", f"{RBAC}/v1",
                               rules=[{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]))
    await admin.create(_object("RoleBinding", "default-lists-pods", f"{RBAC}/v1",
                               roleRef={"apiGroup": RBAC, "kind": "Role", "name": "pod-lister"},
                               subjects=[{"kind": "ServiceAccount", "name": "default"}]))
    await eventually(lambda: admin.access_review(verb="list", resource="pods", namespace=NAMESPACE,
                                                 user=ACCOUNT_USER, groups=["system:serviceaccounts"]),
                     lambda review: review.status.allowed, what="the binding reaching the authorizer")


async def _log_of(admin: Client, pod: str) -> str:
    return b"".join([chunk async for chunk in admin.logs(pod, namespace=NAMESPACE)]).decode()


async def test_a_pod_lists_pods_with_its_service_account_token_and_is_refused_secrets(cluster):
    admin, address = cluster
    await admin.create(manifest.to_message({"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": NAMESPACE}}))
    await eventually(lambda: admin.get("ServiceAccount", "default", namespace=NAMESPACE),
                     lambda account: bool(account.metadata.uid), what="the namespace's default service account")
    await admin.create(_object("Secret", "db-password", stringData={"password": "hunter2"}))
    await admin.create(_object("Pod", "neighbour", spec={
        "schedulerName": UNSERVED_SCHEDULER, "containers": [{"name": "main", "image": "busybox"}]}))
    await _grant_pod_listing(admin)

    await admin.create(_object("Pod", "api-caller", spec={
        "nodeName": NODE, "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "python", "command": [sys.executable, "-c", CALLER],
                        "env": [{"name": "SAMPAN_SERVER", "value": address}]}]}))
    pod = await eventually(lambda: admin.get("Pod", "api-caller", namespace=NAMESPACE),
                           lambda p: p.status.phase in ("Succeeded", "Failed"), timeout=60,
                           what="the pod to finish")
    log = await _log_of(admin, "api-caller")
    assert pod.status.phase == "Succeeded", log

    lines = log.splitlines()
    assert lines[0].startswith("files: ") and lines[0].endswith("/volumes/serviceaccount/kube-api-access")
    assert "pods: api-caller neighbour" in lines
    assert ('secrets: PERMISSION_DENIED secrets is forbidden: User "system:serviceaccount:shop:default" cannot '
            'list resource "secrets" in API group "" in the namespace "shop"') in lines


async def test_a_process_runtime_container_is_told_where_its_service_account_files_are(cluster):
    admin, _ = cluster
    await admin.create(manifest.to_message({"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": NAMESPACE}}))
    await eventually(lambda: admin.get("ServiceAccount", "default", namespace=NAMESPACE),
                     lambda account: bool(account.metadata.uid), what="the namespace's default service account")
    script = f'cat "${TOKEN_DIR_ENV}/namespace"; echo; test -s "${TOKEN_DIR_ENV}/ca.crt" && echo ca-present'
    await admin.create(_object("Pod", "quiet", spec={
        "nodeName": NODE, "restartPolicy": "Never", "automountServiceAccountToken": False,
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", f'echo "[${TOKEN_DIR_ENV}]"']}]}))
    await admin.create(_object("Pod", "mounted", spec={
        "nodeName": NODE, "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}))
    for name in ("quiet", "mounted"):
        await eventually(lambda: admin.get("Pod", name, namespace=NAMESPACE),
                         lambda p: p.status.phase == "Succeeded", timeout=30, what=f"pod {name} to succeed")
    assert await _log_of(admin, "mounted") == f"{NAMESPACE}\nca-present\n"
    assert await _log_of(admin, "quiet") == "[]\n"  # no token, so no directory to point at
