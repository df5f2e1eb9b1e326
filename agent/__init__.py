"""The node agent (``sampan agent``): Sampan's kubelet.

It registers its Node, keeps a Lease, watches the pods bound to it and runs
them through a container runtime (``agent.runtime``), writing their status
back. It talks to the control service only through ``control.client``.
"""
