"""Server-side validation: Kubernetes' rules, with Kubernetes' messages.

``validate(kind, obj, old=old)`` returns every broken rule as a FieldError
(an empty list means valid). It runs the object-metadata rules every kind
shares (meta.py), then the kind's own validator from ``VALIDATORS``: adding a
kind with rules is one module with one function, and one entry there.

The API service validates after defaulting, as Kubernetes does, but the rules
never rely on it: a field Kubernetes would default is checked only when it is
set, so validating an undefaulted object reports only what is wrong with it.
On update (``old`` given) the update rules run as well: immutable metadata,
Kubernetes' narrow list of mutable pod fields, immutable ConfigMaps and
Secrets.

The package is laid out by what it validates:

- meta.py: object metadata, for every kind;
- pod.py: the pod spec and pod updates, with its parts in pod_containers.py,
  pod_volumes.py, pod_scheduling.py, security_contexts.py and downward_api.py;
- config_data.py (ConfigMap, Secret), node.py, namespace.py, event.py,
  lease.py: the other core kinds;
- apps.py (ReplicaSet, Deployment, DaemonSet, StatefulSet,
  ControllerRevision), batch.py (Job, CronJob) and autoscaling.py
  (HorizontalPodAutoscaler): the workload kinds, with the selector and
  pod-template rules they share in pod_templates.py;
- service.py: Services, Endpoints and EndpointSlices;
- service_account.py: ServiceAccounts;
- rbac.py: Roles, ClusterRoles and their bindings;
- certificates.py: CertificateSigningRequests;
- field_errors.py: the FieldError constructors and field rules they share.

Name formats (DNS labels, qualified names, label values ...) are in
control/api/names.py, since clients check them too.
"""

from __future__ import annotations

from typing import Callable

from google.protobuf.message import Message

from control.api.kinds import Kind
from control.api.manifest import FieldError
from control.server.validation.apps import (
    validate_controller_revision, validate_daemon_set, validate_deployment, validate_replica_set,
    validate_stateful_set,
)
from control.server.validation.autoscaling import validate_horizontal_pod_autoscaler
from control.server.validation.batch import validate_cron_job, validate_job
from control.server.validation.certificates import validate_certificate_signing_request
from control.server.validation.config_data import validate_config_map, validate_secret
from control.server.validation.event import validate_event
from control.server.validation.lease import validate_lease
from control.server.validation.meta import validate_object_meta
from control.server.validation.namespace import validate_namespace
from control.server.validation.node import validate_node
from control.server.validation.pod import validate_pod
from control.server.validation.rbac import (
    validate_cluster_role, validate_cluster_role_binding, validate_role, validate_role_binding,
)
from control.server.validation.service import validate_endpoint_slice, validate_endpoints, validate_service
from control.server.validation.service_account import validate_service_account

__all__ = ["VALIDATORS", "Validator", "validate", "validate_object_meta"]

# A kind's rules: (new object, stored object on update or None) -> broken rules.
Validator = Callable[[Message, Message | None], list[FieldError]]

# One validator per kind; the object metadata rules run for every kind.
VALIDATORS: dict[str, Validator] = {
    "Namespace": validate_namespace,
    "Node": validate_node,
    "Pod": validate_pod,
    "ConfigMap": validate_config_map,
    "Secret": validate_secret,
    "Event": validate_event,
    "Lease": validate_lease,
    "ReplicaSet": validate_replica_set,
    "Deployment": validate_deployment,
    "DaemonSet": validate_daemon_set,
    "StatefulSet": validate_stateful_set,
    "ControllerRevision": validate_controller_revision,
    "Job": validate_job,
    "CronJob": validate_cron_job,
    "HorizontalPodAutoscaler": validate_horizontal_pod_autoscaler,
    "Service": validate_service,
    "Endpoints": validate_endpoints,
    "EndpointSlice": validate_endpoint_slice,
    "ServiceAccount": validate_service_account,
    "Role": validate_role,
    "ClusterRole": validate_cluster_role,
    "RoleBinding": validate_role_binding,
    "ClusterRoleBinding": validate_cluster_role_binding,
    "CertificateSigningRequest": validate_certificate_signing_request,
}


def validate(kind: Kind, obj: Message, *, old: Message | None = None) -> list[FieldError]:
    """Every rule ``obj`` breaks, as a new object or (``old`` given) as an update of ``old``."""
    errors = validate_object_meta(kind, obj.metadata, old_meta=None if old is None else old.metadata)
    validator = VALIDATORS.get(kind.kind)
    if validator is not None:
        errors += validator(obj, old)
    return errors
