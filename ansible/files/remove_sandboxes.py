"""Stop and remove every pod sandbox of the containerd at SOCKET through the
CRI, so the CNI plugins take their network down (veths, addresses, IPAM
records). Prints how many it removed; nothing answering is not an error.

Usage: python remove_sandboxes.py SOCKET
"""

import os
import sys

import grpc

from protos.cri.runtime.v1 import api_pb2 as cri
from protos.cri.runtime.v1 import api_pb2_grpc as cri_grpc


def main(argv: list[str]) -> int:
    socket = argv[1]
    if not os.path.exists(socket):
        print(0)
        return 0
    removed = 0
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        runtime = cri_grpc.RuntimeServiceStub(channel)
        try:
            sandboxes = runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items
        except grpc.RpcError:
            print(0)
            return 0
        for sandbox in sandboxes:
            runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60)
            runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60)
            removed += 1
    print(removed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
