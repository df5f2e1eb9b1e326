"""Service, Endpoints and EndpointSlice rules, with Kubernetes' messages.

A Service (Kubernetes' ValidateService and ValidateServiceUpdate):

- ports: required unless the Service is headless (clusterIP None) or an
  ExternalName; each a port 1-65535, a protocol TCP, UDP or SCTP, a
  targetPort that is a port number or an IANA port name; names are DNS
  labels, required and unique once there is more than one port; no two
  ports share a port and protocol, nor a nodePort and protocol;
- nodePort only for NodePort and LoadBalancer Services (whether it is in
  the configured range, and free, is the allocator's to say:
  control/server/allocators.py); healthCheckNodePort only for a
  LoadBalancer with externalTrafficPolicy Local;
- clusterIP / clusterIPs: addresses or "None" (not for NodePort or
  LoadBalancer), the same first value in both, none for ExternalName
  (which needs an externalName, a DNS name); on update the cluster IP may
  not change, unless the type changes to or from ExternalName;
- type, sessionAffinity (ClientIP's timeout 1-86400 seconds), the traffic
  policies (externalTrafficPolicy only for externally reachable Services:
  NodePort, LoadBalancer, or with externalIPs), ipFamilies and
  ipFamilyPolicy take Kubernetes' values; the selector is a label map.

Endpoints and EndpointSlices, whether written by the endpoints controller
or by hand for a Service without a selector: addresses are IPs, ports valid
and named when there are several, hostnames DNS labels, an EndpointSlice's
addressType one of IPv4, IPv6, FQDN.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import (
    dns1123_label_errors, dns1123_subdomain_errors, port_name_errors, port_number_errors, qualified_name_errors,
)
from control.server.validation.field_errors import (
    cidr_errors, forbidden, invalid, ip_errors, labels_errors, one_of, required,
)

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_CLIENT_IP_TIMEOUT_SECONDS = 86400
MAX_SLICE_ENDPOINTS = 1000
MAX_ENDPOINT_ADDRESSES = 100
HEADLESS = "None"


def externally_reachable(spec: Message) -> bool:
    """Kubernetes' ExternallyAccessible: reached from outside the cluster, so an external traffic policy applies."""
    return spec.type in ("NodePort", "LoadBalancer") or (spec.type == "ClusterIP" and bool(spec.external_ips))


def validate_service(service: Message, old: Message | None) -> list[FieldError]:
    spec = service.spec
    errors: list[FieldError] = []
    if spec.type:
        errors += one_of("spec.type", spec.type, SERVICE_TYPES)
    errors += _ports_errors(spec)
    errors += _cluster_ip_errors(spec)
    errors += _type_errors(spec)
    errors += _affinity_errors(spec)
    errors += _policy_errors(spec)
    errors += labels_errors("spec.selector", spec.selector)
    for i, ip in enumerate(spec.external_ips):
        errors += invalid(f"spec.externalIPs[{i}]", ip, ip_errors(ip))
    for i, ingress in enumerate(service.status.load_balancer.ingress):
        if ingress.ip:
            errors += invalid(f"status.loadBalancer.ingress[{i}].ip", ingress.ip, ip_errors(ingress.ip))
    if old is not None:
        errors += _update_errors(spec, old.spec)
    return errors


def _ports_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if not spec.ports and spec.cluster_ip != HEADLESS and spec.type != "ExternalName":
        errors.append(required("spec.ports"))
    names: set[str] = set()
    port_protocols: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        path = f"spec.ports[{i}]"
        if port.name:
            errors += invalid(f"{path}.name", port.name, dns1123_label_errors(port.name))
            if port.name in names:
                errors.append(FieldError(f"{path}.name", "Duplicate value", "", port.name))
            names.add(port.name)
        elif len(spec.ports) > 1:
            errors.append(required(f"{path}.name"))
        errors += invalid(f"{path}.port", port.port, port_number_errors(port.port))
        if port.protocol:
            errors += one_of(f"{path}.protocol", port.protocol, PROTOCOLS)
        if port.app_protocol:
            errors += invalid(f"{path}.appProtocol", port.app_protocol, qualified_name_errors(port.app_protocol))
        target = port.target_port
        if target.WhichOneof("value") == "str_value":
            errors += invalid(f"{path}.targetPort", target.str_value, port_name_errors(target.str_value))
        elif target.WhichOneof("value") == "int_value":
            errors += invalid(f"{path}.targetPort", target.int_value, port_number_errors(target.int_value))
        if (port.port, port.protocol) in port_protocols:
            errors.append(FieldError(path, "Duplicate value",
                                     f'{{"port": {port.port}, "protocol": "{port.protocol}"}}'))
        port_protocols.add((port.port, port.protocol))
        if port.node_port:
            errors += invalid(f"{path}.nodePort", port.node_port, port_number_errors(port.node_port))
            if spec.type in ("ClusterIP", "ExternalName"):
                errors.append(forbidden(f"{path}.nodePort", f"may not be used when `type` is '{spec.type}'"))
            if (port.node_port, port.protocol) in node_ports:
                errors.append(FieldError(f"{path}.nodePort", "Duplicate value", "", port.node_port))
            node_ports.add((port.node_port, port.protocol))
    return errors


def _cluster_ip_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.cluster_ip and spec.cluster_ip != HEADLESS:
        errors += invalid("spec.clusterIP", spec.cluster_ip, ip_errors(spec.cluster_ip))
    for i, ip in enumerate(spec.cluster_ips):
        path = f"spec.clusterIPs[{i}]"
        if ip == HEADLESS:
            if i > 0:
                errors += invalid(path, ip, ["must be empty when the first value is 'None'"])
        elif i > 0 and spec.cluster_ips[0] == HEADLESS:
            errors += invalid(path, ip, ["must be empty when the first value is 'None'"])
        else:
            errors += invalid(path, ip, ip_errors(ip))
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        errors += invalid("spec.clusterIPs[0]", spec.cluster_ips[0], ["must match `clusterIP`"])
    if len(spec.cluster_ips) > 2:
        errors += invalid("spec.clusterIPs", ", ".join(spec.cluster_ips), ["may only hold up to 2 values"])
    for i, family in enumerate(spec.ip_families):
        errors += one_of(f"spec.ipFamilies[{i}]", family, IP_FAMILIES)
        if family in spec.ip_families[:i]:
            errors.append(FieldError(f"spec.ipFamilies[{i}]", "Duplicate value", "", family))
    if spec.ip_family_policy:
        errors += one_of("spec.ipFamilyPolicy", spec.ip_family_policy, IP_FAMILY_POLICIES)
        if spec.ip_family_policy == "SingleStack":
            if len(spec.ip_families) > 1:
                errors += invalid("spec.ipFamilies", ", ".join(spec.ip_families),
                                  ["must hold one value when ipFamilyPolicy is SingleStack"])
            if len(spec.cluster_ips) > 1:
                errors += invalid("spec.clusterIPs", ", ".join(spec.cluster_ips),
                                  ["must hold one value when ipFamilyPolicy is SingleStack"])
    return errors


def _type_errors(spec: Message) -> list[FieldError]:
    """What each type allows: no headless NodePorts, nothing IP-shaped for an ExternalName, LB-only fields."""
    errors: list[FieldError] = []
    if spec.type in ("NodePort", "LoadBalancer") and spec.cluster_ip == HEADLESS:
        errors += invalid("spec.clusterIPs[0]", HEADLESS, [f"may not be set to 'None' for {spec.type} services"])
    if spec.type == "ExternalName":
        if spec.cluster_ips or spec.cluster_ip:
            errors.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.ip_families:
            errors.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.ip_family_policy:
            errors.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        # The name (a CNAME) may end in a dot to say it is fully qualified.
        name = spec.external_name.removesuffix(".")
        if name:
            errors += invalid("spec.externalName", spec.external_name, dns1123_subdomain_errors(name))
        else:
            errors.append(required("spec.externalName"))
    if spec.type != "LoadBalancer":
        for field, path in (("load_balancer_class", "spec.loadBalancerClass"),
                            ("allocate_load_balancer_node_ports", "spec.allocateLoadBalancerNodePorts")):
            if spec.HasField(field):
                errors.append(forbidden(path, "may only be used when `type` is 'LoadBalancer'"))
        if spec.load_balancer_source_ranges:
            errors.append(forbidden("spec.loadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
    for i, cidr in enumerate(spec.load_balancer_source_ranges):
        errors += invalid(f"spec.loadBalancerSourceRanges[{i}]", cidr, cidr_errors(cidr.strip()))
    return errors


def _affinity_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.session_affinity:
        errors += one_of("spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
    client_ip = spec.session_affinity_config.client_ip
    if spec.session_affinity == "ClientIP":
        if client_ip.HasField("timeout_seconds") and not 0 < client_ip.timeout_seconds <= MAX_CLIENT_IP_TIMEOUT_SECONDS:
            errors += invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", client_ip.timeout_seconds,
                              [f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT_SECONDS}"])
    elif spec.HasField("session_affinity_config"):
        errors.append(FieldError("spec.sessionAffinityConfig", "Invalid value",
                                 f"must not be set when session affinity is {spec.session_affinity or 'None'}"))
    return errors


def _policy_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.external_traffic_policy:
        if externally_reachable(spec):
            errors += one_of("spec.externalTrafficPolicy", spec.external_traffic_policy, TRAFFIC_POLICIES)
        else:
            errors += invalid("spec.externalTrafficPolicy", spec.external_traffic_policy,
                              ["may only be set for externally-accessible services"])
    if spec.internal_traffic_policy:
        errors += one_of("spec.internalTrafficPolicy", spec.internal_traffic_policy, TRAFFIC_POLICIES)
    if spec.health_check_node_port:
        if spec.type != "LoadBalancer" or spec.external_traffic_policy != "Local":
            errors += invalid("spec.healthCheckNodePort", spec.health_check_node_port,
                              ["may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"])
        else:
            errors += invalid("spec.healthCheckNodePort", spec.health_check_node_port,
                              port_number_errors(spec.health_check_node_port))
    return errors


def _update_errors(spec: Message, was: Message) -> list[FieldError]:
    """The cluster IP stays what it was, unless the Service becomes or stops being an ExternalName."""
    if spec.type == "ExternalName" or was.type == "ExternalName":
        return []
    before = was.cluster_ips[0] if was.cluster_ips else was.cluster_ip
    now = spec.cluster_ips[0] if spec.cluster_ips else spec.cluster_ip
    if before and now != before:
        return invalid("spec.clusterIPs[0]", now, ["may not change once set"])
    return []


# ------------------------------------------------------------ Endpoints


def validate_endpoints(endpoints: Message, old: Message | None) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, subset in enumerate(endpoints.subsets):
        path = f"subsets[{i}]"
        if not subset.addresses and not subset.not_ready_addresses:
            errors.append(required(f"{path}", "must specify `addresses` or `notReadyAddresses`"))
        for field, addresses in (("addresses", subset.addresses), ("notReadyAddresses", subset.not_ready_addresses)):
            for j, address in enumerate(addresses):
                errors += _address_errors(f"{path}.{field}[{j}]", address)
        for j, port in enumerate(subset.ports):
            port_path = f"{path}.ports[{j}]"
            if port.name:
                errors += invalid(f"{port_path}.name", port.name, dns1123_label_errors(port.name))
            elif len(subset.ports) > 1:
                errors.append(required(f"{port_path}.name"))
            errors += invalid(f"{port_path}.port", port.port, port_number_errors(port.port))
            if port.protocol:
                errors += one_of(f"{port_path}.protocol", port.protocol, PROTOCOLS)
    return errors


def _address_errors(path: str, address: Message) -> list[FieldError]:
    errors = invalid(f"{path}.ip", address.ip, ip_errors(address.ip)) if address.ip else [required(f"{path}.ip")]
    if address.hostname:
        errors += invalid(f"{path}.hostname", address.hostname, dns1123_label_errors(address.hostname))
    if address.node_name:
        errors += invalid(f"{path}.nodeName", address.node_name, dns1123_subdomain_errors(address.node_name))
    return errors


def validate_endpoint_slice(slice_: Message, old: Message | None) -> list[FieldError]:
    errors: list[FieldError] = []
    if not slice_.address_type:
        errors.append(required("addressType"))
    else:
        errors += one_of("addressType", slice_.address_type, ADDRESS_TYPES)
    if len(slice_.endpoints) > MAX_SLICE_ENDPOINTS:
        errors.append(FieldError("endpoints", "Too many", f"must have at most {MAX_SLICE_ENDPOINTS} items"))
    for i, endpoint in enumerate(slice_.endpoints):
        path = f"endpoints[{i}]"
        if not endpoint.addresses:
            errors.append(required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(endpoint.addresses) > MAX_ENDPOINT_ADDRESSES:
            errors.append(FieldError(f"{path}.addresses", "Too many",
                                     f"must have at most {MAX_ENDPOINT_ADDRESSES} items"))
        for j, address in enumerate(endpoint.addresses):
            errors += _slice_address_errors(f"{path}.addresses[{j}]", address, slice_.address_type)
        if endpoint.hostname:
            errors += invalid(f"{path}.hostname", endpoint.hostname, dns1123_label_errors(endpoint.hostname))
        if endpoint.node_name:
            errors += invalid(f"{path}.nodeName", endpoint.node_name, dns1123_subdomain_errors(endpoint.node_name))
    names: set[str] = set()
    for i, port in enumerate(slice_.ports):
        path = f"ports[{i}]"
        if port.name:
            errors += invalid(f"{path}.name", port.name, dns1123_label_errors(port.name))
        if port.name in names:
            errors.append(FieldError(f"{path}.name", "Duplicate value", "", port.name))
        names.add(port.name)
        if port.HasField("port"):
            errors += invalid(f"{path}.port", port.port, port_number_errors(port.port))
        if port.protocol:
            errors += one_of(f"{path}.protocol", port.protocol, PROTOCOLS)
    return errors


def _slice_address_errors(path: str, address: str, address_type: str) -> list[FieldError]:
    if address_type == "FQDN":
        return invalid(path, address, dns1123_subdomain_errors(address))
    problems = ip_errors(address)
    if not problems and (":" in address) != (address_type == "IPv6"):
        problems = [f"must be an {address_type} address"]
    return invalid(path, address, problems)
