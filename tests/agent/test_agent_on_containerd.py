"""The whole agent on real containerd, end to end: a control service, an
`sampan agent` process using the CRI, and pods created through the API.

Covers the issue's must-show checks for the agent: a two-container pod shares
its network and its IP answers HTTP from the host, `ctr` lists its sandbox and
containers and deleting the pod removes them; kill -9 of the agent while 10
pods run leaves the same containers running with no restarts once it is back;
a ConfigMap update reaches a running container; a minute without the control
service changes nothing for running pods.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2

NODE = "node-cri"
PAGE = "hello from a configmap\n"


def start_agent(server: str, containerd, data_dir) -> subprocess.Popen:
    log = open(os.path.join(data_dir, "agent.log"), "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "control.cli.main", "agent", "--insecure-plaintext", "--server", server,
         "--node-name", NODE, "--data-dir", str(data_dir), "--runtime", "containerd",
         "--containerd-socket", containerd.socket, "--metrics-listen", "", "--listen", "127.0.0.1:0",
         "--restart-backoff", "0.5", "--restart-backoff-max", "2"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def wait_for(predicate, *, timeout: float = 60.0, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}")


def web_pod(name: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.spec.node_name = NODE
    pod.spec.termination_grace_period_seconds = 5
    web = pod.spec.containers.add(name="web", image="busybox:1.36", image_pull_policy="IfNotPresent")
    web.command.extend(["httpd", "-f", "-p", "8080", "-h", "/www"])
    web.volume_mounts.add(name="www", mount_path="/www")
    probe = pod.spec.containers.add(name="probe", image="busybox:1.36", image_pull_policy="IfNotPresent")
    # The second container reaches the first over the pod's shared loopback.
    probe.command.extend(["sh", "-c", "while true; do wget -q -O /tmp/seen http://127.0.0.1:8080/ "
                                      "&& cp /tmp/seen /tmp/ok; sleep 0.5; done"])
    volume = pod.spec.volumes.add(name="www")
    volume.config_map.name = "www"
    return pod


async def running(api: Client, name: str):
    pod = await api.get("Pod", name, namespace="default")
    ready = all(s.ready for s in pod.status.container_statuses) and len(pod.status.container_statuses) == 2
    return pod if pod.status.phase == "Running" and pod.status.pod_ip and ready else None


@pytest.fixture
async def agent_on_containerd(service, api, containerd, tmp_path):
    config = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    config.metadata.name = "www"
    config.metadata.namespace = "default"
    config.data["index.html"] = PAGE
    await api.create(config)
    agent = start_agent(f"127.0.0.1:{service.port}", containerd, tmp_path)
    holder = {"agent": agent}
    try:
        async def node_ready():
            try:
                node = await api.get("Node", NODE)
            except errors.NotFoundError:
                return None
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        await wait_for(node_ready, what="the node to be Ready")
        yield holder
    finally:
        for pod in (await api.list("Pod", namespace="default"))[0]:
            await api.delete("Pod", pod.metadata.name, namespace="default", grace_period_seconds=0, force=True)
        current = holder["agent"]
        if current.poll() is None:
            os.killpg(current.pid, signal.SIGKILL)
            current.wait()
        from tests.support.containerd import remove_all_sandboxes
        remove_all_sandboxes(containerd.socket)


async def test_a_two_container_pod_shares_its_network_and_answers_http(api, containerd, agent_on_containerd):
    await api.create(web_pod("web"))
    pod = await wait_for(lambda: running(api, "web"), what="pod web Running and Ready")
    page = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/index.html", timeout=5).read().decode())
    assert page == PAGE
    ids = {s.name: s.container_id.split("://")[1] for s in pod.status.container_statuses}
    listed = containerd.ctr("-n", "k8s.io", "containers", "ls", "-q").split()
    assert set(ids.values()) <= set(listed)
    # The probe container fetched the page over the pod's loopback.
    async def probe_saw_page():
        from agent.runtime.cri import CRIRuntime
        runtime = CRIRuntime(containerd.socket)
        try:
            result = await runtime.exec_sync(ids["probe"], ("cat", "/tmp/ok"), timeout=5)
        finally:
            await runtime.close()
        return result.exit_code == 0 and result.stdout.decode() == PAGE
    await wait_for(probe_saw_page, timeout=20, what="the probe container to reach httpd on 127.0.0.1")

    await api.delete("Pod", "web", namespace="default")

    async def gone():
        try:
            await api.get("Pod", "web", namespace="default")
            return False
        except errors.NotFoundError:
            return True
    await wait_for(gone, what="the pod to be removed after its containers stopped")
    remaining = set(containerd.ctr("-n", "k8s.io", "containers", "ls", "-q").split())
    assert not (set(ids.values()) & remaining)


async def test_killing_the_agent_leaves_pods_running_and_it_adopts_them(
        service, api, containerd, agent_on_containerd, tmp_path):
    names = [f"web-{i}" for i in range(10)]
    for name in names:
        await api.create(web_pod(name))
    before = {}
    for name in names:
        pod = await wait_for(lambda n=name: running(api, n), what=f"pod {name} Running")
        before[name] = {s.name: (s.container_id, s.restart_count) for s in pod.status.container_statuses}
    os.killpg(agent_on_containerd["agent"].pid, signal.SIGKILL)
    agent_on_containerd["agent"].wait()
    # Pods keep serving with no agent at all.
    for name in names:
        pod = await api.get("Pod", name, namespace="default")
        page = await asyncio.to_thread(
            lambda ip=pod.status.pod_ip: urllib.request.urlopen(f"http://{ip}:8080/index.html", timeout=5).read())
        assert page.decode() == PAGE
    agent_on_containerd["agent"] = start_agent(f"127.0.0.1:{service.port}", containerd, tmp_path)
    lease_before = await api.get("Lease", NODE, namespace="kube-node-lease")

    async def lease_renewed():
        lease = await api.get("Lease", NODE, namespace="kube-node-lease")
        return lease.metadata.resource_version != lease_before.metadata.resource_version
    await wait_for(lease_renewed, what="the restarted agent to renew its lease")
    await asyncio.sleep(2)  # a few relists of the adopted containers
    for name in names:
        pod = await wait_for(lambda n=name: running(api, n), what=f"pod {name} still Running")
        after = {s.name: (s.container_id, s.restart_count) for s in pod.status.container_statuses}
        assert after == before[name]


async def test_a_configmap_update_reaches_the_running_container(api, agent_on_containerd):
    await api.create(web_pod("web"))
    pod = await wait_for(lambda: running(api, "web"), what="pod web Running and Ready")
    config = await api.get("ConfigMap", "www", namespace="default")
    config.data["index.html"] = "updated\n"
    await api.update(config)

    async def served():
        page = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/index.html", timeout=5).read().decode())
        return page == "updated\n"
    await wait_for(served, timeout=30, what="httpd in the pod to serve the updated ConfigMap")
    after = await api.get("Pod", "web", namespace="default")
    assert [s.restart_count for s in after.status.container_statuses] == [0, 0]


async def test_pods_keep_answering_while_the_control_service_is_down_for_a_minute(containerd, tmp_path):
    """The agent loses the control service for 60 s: its pods keep serving,
    and once the service is back the agent reconnects and nothing restarted."""
    from tests.support.control import ControlServer

    control = ControlServer(tmp_path / "control").start()
    agent = None
    try:
        api = Client.connect(control.address)
        config = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        config.metadata.name = "www"
        config.metadata.namespace = "default"
        config.data["index.html"] = PAGE
        await api.create(config)
        agent = start_agent(control.address, containerd, tmp_path)
        await api.create(web_pod("web"))
        pod = await wait_for(lambda: running(api, "web"), what="pod web Running")
        before = {s.name: (s.container_id, s.restart_count) for s in pod.status.container_statuses}
        await api.close()

        control.stop()
        deadline = time.monotonic() + 60
        answers = 0
        while time.monotonic() < deadline:
            page = await asyncio.to_thread(lambda: urllib.request.urlopen(
                f"http://{pod.status.pod_ip}:8080/index.html", timeout=5).read().decode())
            assert page == PAGE
            answers += 1
            assert agent.poll() is None, "the agent must ride out the outage"
            await asyncio.sleep(5)
        assert answers >= 10
        control.start()

        api = Client.connect(control.address)
        lease = await api.get("Lease", NODE, namespace="kube-node-lease")

        async def renewed():
            return (await api.get("Lease", NODE, namespace="kube-node-lease")).spec.renew_time != lease.spec.renew_time
        await wait_for(renewed, what="the agent to renew its lease after the outage")
        after = await wait_for(lambda: running(api, "web"), what="pod web still Running")
        assert {s.name: (s.container_id, s.restart_count) for s in after.status.container_statuses} == before
        await api.delete("Pod", "web", namespace="default", grace_period_seconds=0, force=True)
        await api.close()
    finally:
        if agent is not None and agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
        control.kill()
        from tests.support.containerd import remove_all_sandboxes
        remove_all_sandboxes(containerd.socket)
