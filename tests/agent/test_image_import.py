"""``sampan image import``: an image archive through the CLI, the control
service's relay and the agent into the node's containerd.

An in-process control service; the agent's gRPC server on the private test
containerd (CRI runtime, ctr import) or on the process runtime, its Node
registered as the agent registers it. Covered: an archive built here under a
name no registry has lands in the CRI's namespace (``ctr images ls``) and the
CRI runtime resolves it; without --node every Ready node gets it; the process
runtime refuses with FailedPrecondition; a missing node is NotFound.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from agent.bootstrap.images import image_archive
from agent.image_import import image_store_for, imported_names
from agent.pod_containers import APIPodLookup
from agent.runtime.base import ContainerRuntime
from agent.runtime.cri import CRIRuntime
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, AgentServicer
from control.client import Client
from tests.support.runtime_pods import register_agent_node

IMAGE = "registry.local/test/imported:1"


async def serve_node(api: Client, runtime: ContainerRuntime, tmp_path: Path, *, name: str) -> AgentServer:
    """An agent server for node name on runtime, and the Node registered with its port."""
    servicer = AgentServicer(runtime, APIPodLookup(api, name), images=image_store_for(runtime, node_name=name),
                             spool_dir=tmp_path / name / "image-imports")
    server = AgentServer(servicer, listen="127.0.0.1:0")
    await register_agent_node(api, tmp_path, name=name, agent_port=await server.start())
    return server


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A one-layer OCI archive of an image under a name no registry serves."""
    path = tmp_path / "imported.tar"
    path.write_bytes(image_archive(names=(IMAGE,), layer=b"\0" * 1024, cmd=("true",)))
    return path


@pytest.fixture
def cri_runtime(containerd) -> AsyncIterator[CRIRuntime]:
    return CRIRuntime(containerd.socket)


@pytest.fixture
async def cri_node(api, cri_runtime, containerd, tmp_path) -> AsyncIterator[str]:
    server = await serve_node(api, cri_runtime, tmp_path, name="node-cri")
    yield "node-cri"
    await server.stop(0)
    await cri_runtime.close()
    containerd.ctr("images", "rm", IMAGE, check=False)


@pytest.fixture
async def process_node(api, tmp_path) -> AsyncIterator[str]:
    runtime = ProcessRuntime(str(tmp_path / "process-runtime"))
    server = await serve_node(api, runtime, tmp_path, name="node-proc")
    yield "node-proc"
    await server.stop(0)
    await runtime.close()


async def test_an_imported_archive_is_in_the_cri_image_store(cri_node, cri_runtime, containerd, archive, sampan):
    assert await sampan("image", "import", str(archive), "--node", cri_node) == (
        0, f"node/{cri_node}: imported {IMAGE}\n", "")
    assert IMAGE in containerd.ctr("images", "ls", "-q").split()
    assert await cri_runtime.image_ref(IMAGE)


async def test_without_node_every_ready_node_imports_the_archive(cri_node, containerd, archive, sampan):
    code, stdout, stderr = await sampan("image", "import", str(archive))
    assert (code, stdout, stderr) == (0, f"node/{cri_node}: imported {IMAGE}\n", "")
    assert IMAGE in containerd.ctr("images", "ls", "-q").split()


async def test_an_archive_larger_than_a_request_goes_up_in_chunks(cri_node, containerd, tmp_path, sampan):
    big = tmp_path / "big.tar"  # random bytes do not compress: the archive is over 3 MiB
    big.write_bytes(image_archive(names=(IMAGE,), layer=_tar_of_random(4 * 1024 * 1024), cmd=("true",)))
    assert big.stat().st_size > 3 * 1024 * 1024
    assert await sampan("image", "import", str(big), "--node", cri_node) == (
        0, f"node/{cri_node}: imported {IMAGE}\n", "")


async def test_the_process_runtime_has_no_image_store(process_node, archive, sampan):
    assert await sampan("image", "import", str(archive), "--node", process_node) == (
        1, "", f"node/{process_node}: Error from server (Forbidden): node {process_node} uses the process "
               "runtime: it has no image store\n")


async def test_a_missing_node_is_not_found(service, archive, sampan):
    assert await sampan("image", "import", str(archive), "--node", "nope") == (
        1, "", 'node/nope: Error from server (NotFound): nodes "nope" not found\n')


def test_the_names_come_from_ctrs_unpacking_lines():
    output = ("unpacking docker.io/library/busybox:1.36 (sha256:" + "a" * 64 + ")...done\n"
              "unpacking docker.io/library/busybox:latest (sha256:" + "a" * 64 + ")...done\n")
    assert imported_names(output) == ["docker.io/library/busybox:1.36", "docker.io/library/busybox:latest"]


def _tar_of_random(size: int) -> bytes:
    import io
    import os
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        info = tarfile.TarInfo("random.bin")
        info.size = size
        layer.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()
