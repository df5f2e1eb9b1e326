"""The pod lifecycle manager: what runs pods on a node (Sampan's kubelet core).

``PodManager`` (manager.py) is the entry point the agent wires up. The rest,
by the noun each module holds:

- ``reflector``, ``config_cache``: local copies of the API's pods (bound to this
  node), ConfigMaps and Secrets, kept by list+watch;
- ``relister``: the runtime's state and the lifecycle events between snapshots;
- ``workers``: one serialized worker per pod;
- ``pod_sync``, ``starter``: one pod's level-triggered sync, one container's start;
- ``runtime_specs``, ``env``, ``downward_api``, ``volumes``, ``atomic_writer``:
  from a Pod to what the runtime is asked for;
- ``probes``, ``handlers``: liveness/readiness/startup probes and lifecycle hooks;
- ``status``, ``status_manager``: the pure status computation and its writer;
- ``backoff``, ``events``, ``timestamps``: restart back-off, Events, API times.
"""

from agent.pods.backoff import RestartBackoff
from agent.pods.manager import PodManager
from agent.pods.status import compute_pod_status

__all__ = ["PodManager", "RestartBackoff", "compute_pod_status"]
