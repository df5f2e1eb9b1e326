"""The kind registry: which resource kinds the API serves and how they are named.

Adding a kind is one entry in ``KINDS`` (plus its message in protos/ and, if it
has rules, a validator in control/server/validation). Everything else (storage
keys, the CLI's names and short names, discovery, manifests) reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from google.protobuf.message import Message

from protos.api.v1 import apps_pb2, autoscaling_pb2, batch_pb2, certificates_pb2, core_pb2, rbac_pb2, services_pb2

TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True)
class Kind:
    """One resource kind as the API serves it."""

    kind: str
    plural: str
    api_version: str
    namespaced: bool
    message: type[Message]
    short_names: tuple[str, ...] = ()
    # Kinds whose status is written through the status subresource only.
    has_status: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def type_url(self) -> str:
        return TYPE_URL_PREFIX + self.message.DESCRIPTOR.full_name

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def storage_prefix(self, namespace: str = "") -> str:
        """The store key prefix for this kind, optionally within one namespace."""
        if self.namespaced and namespace:
            return f"/registry/{self.plural}/{namespace}/"
        return f"/registry/{self.plural}/"

    def storage_key(self, *, namespace: str, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.plural}/{name}"

    def new(self) -> Message:
        return self.message()


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "namespaces", "v1", False, core_pb2.Namespace, ("ns",), has_status=True),
    Kind("Node", "nodes", "v1", False, core_pb2.Node, ("no",), has_status=True),
    Kind("Pod", "pods", "v1", True, core_pb2.Pod, ("po",), has_status=True),
    Kind("ConfigMap", "configmaps", "v1", True, core_pb2.ConfigMap, ("cm",)),
    Kind("Secret", "secrets", "v1", True, core_pb2.Secret),
    Kind("ServiceAccount", "serviceaccounts", "v1", True, core_pb2.ServiceAccount, ("sa",)),
    Kind("Event", "events", "v1", True, core_pb2.Event, ("ev",)),
    Kind("Lease", "leases", "coordination.k8s.io/v1", True, core_pb2.Lease),
    Kind("ReplicaSet", "replicasets", "apps/v1", True, apps_pb2.ReplicaSet, ("rs",), has_status=True),
    Kind("Deployment", "deployments", "apps/v1", True, apps_pb2.Deployment, ("deploy",), has_status=True),
    Kind("DaemonSet", "daemonsets", "apps/v1", True, apps_pb2.DaemonSet, ("ds",), has_status=True),
    Kind("StatefulSet", "statefulsets", "apps/v1", True, apps_pb2.StatefulSet, ("sts",), has_status=True),
    Kind("ControllerRevision", "controllerrevisions", "apps/v1", True, apps_pb2.ControllerRevision),
    Kind("Job", "jobs", "batch/v1", True, batch_pb2.Job, has_status=True),
    Kind("CronJob", "cronjobs", "batch/v1", True, batch_pb2.CronJob, ("cj",), has_status=True),
    Kind("HorizontalPodAutoscaler", "horizontalpodautoscalers", "autoscaling/v2", True,
         autoscaling_pb2.HorizontalPodAutoscaler, ("hpa",), has_status=True),
    Kind("Service", "services", "v1", True, services_pb2.Service, ("svc",), has_status=True),
    Kind("Endpoints", "endpoints", "v1", True, services_pb2.Endpoints, ("ep",)),
    Kind("EndpointSlice", "endpointslices", "discovery.k8s.io/v1", True, services_pb2.EndpointSlice),
    Kind("Role", "roles", "rbac.authorization.k8s.io/v1", True, rbac_pb2.Role),
    Kind("ClusterRole", "clusterroles", "rbac.authorization.k8s.io/v1", False, rbac_pb2.ClusterRole),
    Kind("RoleBinding", "rolebindings", "rbac.authorization.k8s.io/v1", True, rbac_pb2.RoleBinding),
    Kind("ClusterRoleBinding", "clusterrolebindings", "rbac.authorization.k8s.io/v1", False,
         rbac_pb2.ClusterRoleBinding),
    Kind("CertificateSigningRequest", "certificatesigningrequests", "certificates.k8s.io/v1", False,
         certificates_pb2.CertificateSigningRequest, ("csr",), has_status=True),
)

_BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}
_BY_TYPE_URL: dict[str, Kind] = {k.type_url: k for k in KINDS}
_BY_ALIAS: dict[str, Kind] = {}
for _k in KINDS:
    for _alias in (_k.kind.lower(), _k.plural, _k.singular, *_k.short_names):
        _BY_ALIAS[_alias] = _k
    if _k.group:
        for _alias in (_k.plural, _k.singular):
            _BY_ALIAS[f"{_alias}.{_k.group.split('/')[0]}"] = _k


class UnknownKindError(LookupError):
    """A kind name, alias or type URL that the API does not serve."""


def by_kind(kind: str) -> Kind:
    """Look a kind up by its exact Kind name ("Pod")."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise UnknownKindError(f'the server doesn\'t have a resource type "{kind}"') from None


def by_type_url(type_url: str) -> Kind:
    try:
        return _BY_TYPE_URL[type_url]
    except KeyError:
        raise UnknownKindError(f"no kind is served for type {type_url!r}") from None


def resolve(name: str) -> Kind:
    """Look a kind up the way kubectl does: Kind, plural, singular or short name."""
    kind = _BY_KIND.get(name) or _BY_ALIAS.get(name.lower())
    if kind is None:
        raise UnknownKindError(f'the server doesn\'t have a resource type "{name}"')
    return kind


def by_api_version_kind(api_version: str, kind: str) -> Kind:
    """The kind a manifest names with apiVersion and kind."""
    found = _BY_KIND.get(kind)
    if found is None:
        raise UnknownKindError(f'no matches for kind "{kind}" in version "{api_version}"')
    if found.api_version != api_version:
        raise UnknownKindError(f'no matches for kind "{kind}" in version "{api_version}"')
    return found


def all_kinds() -> Iterable[Kind]:
    return KINDS
