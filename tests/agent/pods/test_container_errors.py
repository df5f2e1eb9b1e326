"""Why a container does not run, as the status tells it: image pull policy
(ErrImagePull then ImagePullBackOff, ErrImageNeverPull), a command that
cannot be created (CreateContainerError); and a changed image replaces the
running container. The process runtime treats a malformed image reference
as an image that cannot be pulled."""

from __future__ import annotations

from tests.agent.pods.support import container, container_status, pod_manifest, pod_until, waiting_reason

UNPULLABLE = "registry.example/UPPER-case-is-invalid"


async def test_an_image_that_cannot_be_pulled_backs_off(api, start_agent):
    from agent.pods import RestartBackoff

    await start_agent(backoff=RestartBackoff(initial=1.0, maximum=2.0))
    await api.create(pod_manifest("pull", container("app", image=UNPULLABLE, imagePullPolicy="Always")))
    pod = await pod_until(api, "pull", lambda p: waiting_reason(p, "app") == "ErrImagePull")
    assert "invalid image reference" in container_status(pod, "app").state.waiting.message
    pod = await pod_until(api, "pull", lambda p: waiting_reason(p, "app") == "ImagePullBackOff")
    assert container_status(pod, "app").state.waiting.message == f'Back-off pulling image "{UNPULLABLE}"'
    assert pod.status.phase == "Pending"


async def test_never_pull_with_the_image_absent_waits_with_err_image_never_pull(api, agent):
    await api.create(pod_manifest("never", container("app", image=UNPULLABLE, imagePullPolicy="Never")))
    pod = await pod_until(api, "never", lambda p: waiting_reason(p, "app") == "ErrImageNeverPull")
    assert container_status(pod, "app").state.waiting.message == (
        f'Container image "{UNPULLABLE}" is not present with pull policy of Never')


async def test_a_command_that_cannot_run_is_a_create_container_error(api, agent):
    app = container("app")
    app["command"] = ["/no/such/binary"]
    await api.create(pod_manifest("broken", app))
    pod = await pod_until(api, "broken", lambda p: waiting_reason(p, "app") == "CreateContainerError")
    assert "/no/such/binary" in container_status(pod, "app").state.waiting.message


async def test_a_changed_image_replaces_the_running_container(api, agent):
    await api.create(pod_manifest("upgrade", container("app")))
    pod = await pod_until(api, "upgrade", lambda p: container_status(p, "app").ready)
    before = container_status(pod, "app").container_id
    pod.spec.containers[0].image = "busybox:1.37"
    await api.update(pod)
    pod = await pod_until(api, "upgrade", lambda p: container_status(p, "app").image_id == "process://busybox:1.37"
                          and container_status(p, "app").ready)
    status = container_status(pod, "app")
    assert status.container_id != before and status.restart_count == 1


async def test_a_host_network_pod_has_the_nodes_ip(api, agent):
    await api.create(pod_manifest("host", container("app"), hostNetwork=True))
    pod = await pod_until(api, "host", lambda p: p.status.phase == "Running")
    assert pod.status.pod_ip == pod.status.host_ip == "127.0.0.1"
