"""Mutual TLS on the API: only clients with a certificate the cluster CA signed,
unexpired, get in; the certificate names the user (CN) and groups (O)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from control.api import errors
from control.auth import pki
from control.client import Client, ClientCredentials
from control.service import ControlService
from protos.api.v1 import core_pb2


def _credentials(svc: ControlService, pair: pki.CertKey) -> ClientCredentials:
    return ClientCredentials(ca=svc.pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)


def _config_map(name: str) -> core_pb2.ConfigMap:
    obj = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={"k": "v"})
    obj.metadata.name, obj.metadata.namespace = name, "default"
    return obj


async def _refused(svc: ControlService, credentials: ClientCredentials) -> None:
    async with Client.connect(f"127.0.0.1:{svc.port}", credentials=credentials, timeout=5) as api:
        with pytest.raises(errors.APIError) as raised:
            await api.create(_config_map("intruder"))
        assert raised.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    async with Client.connect(f"127.0.0.1:{svc.port}", credentials=_credentials(svc, svc.pki.load("admin"))) as api:
        with pytest.raises(errors.NotFoundError):
            await api.get("ConfigMap", "intruder", namespace="default")


async def test_the_admin_certificate_gets_in_and_the_ca_lives_ten_years(secure):
    async with Client.connect(f"127.0.0.1:{secure.port}", credentials=_credentials(secure, secure.pki.load("admin"))) as api:
        created = await api.create(_config_map("settings"))
        assert created.metadata.uid
    ca = secure.pki.ca
    assert ca.not_after - ca.cert.not_valid_before_utc >= dt.timedelta(days=3650)
    server = secure.pki.load("server").cert
    assert server.not_valid_after_utc - server.not_valid_before_utc <= dt.timedelta(days=366)


async def test_no_client_certificate_is_refused(secure):
    await _refused(secure, ClientCredentials(ca=secure.pki.ca_pem))


async def test_plain_text_is_refused(secure):
    await _refused(secure, ClientCredentials())


async def test_a_certificate_from_another_ca_is_refused(secure):
    other = pki.create_ca(common_name="another-ca")
    stranger = pki.issue(other, common_name="sampan-admin", organizations=["system:masters"])
    await _refused(secure, _credentials(secure, stranger))


async def test_an_expired_certificate_is_refused(secure):
    ca = secure.pki.ca
    key = pki.new_key()
    past = pki.now() - dt.timedelta(days=30)
    expired = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "system:masters"),
                                        x509.NameAttribute(x509.NameOID.COMMON_NAME, "sampan-admin")]))
               .issuer_name(ca.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(past).not_valid_after(past + dt.timedelta(days=1))
               .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .sign(ca.key, hashes.SHA256()))
    await _refused(secure, _credentials(secure, pki.CertKey(expired, key)))


async def test_the_certificate_names_the_user_and_its_groups(secure):
    alice = pki.issue(secure.pki.ca, common_name="alice", organizations=["developers"])
    async with Client.connect(f"127.0.0.1:{secure.port}", credentials=_credentials(secure, alice)) as api:
        with pytest.raises(errors.ForbiddenError) as raised:
            await api.list("Pod", namespace="default")
    assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.message.startswith(
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"')


def _served_serial(svc: ControlService) -> int:
    """The serial number of the certificate the API presents to a new connection."""
    context = ssl.create_default_context(cafile=str(svc.pki.path("ca", "crt")))
    context.load_cert_chain(str(svc.pki.path("admin", "crt")), str(svc.pki.path("admin", "key")))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", svc.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


async def test_a_renewed_server_certificate_is_served_without_a_restart(secure):
    before = secure.pki.load("server").cert.serial_number
    assert await asyncio.to_thread(_served_serial, secure) == before
    renewed = secure.pki.issue_leaf("server").cert.serial_number
    assert renewed != before
    assert await asyncio.to_thread(_served_serial, secure) == renewed
    async with Client.connect(f"127.0.0.1:{secure.port}", credentials=_credentials(secure, secure.pki.load("admin"))) as api:
        await api.create(_config_map("after-renewal"))


def test_validity_accepts_years_days_and_hours_and_refuses_the_rest():
    assert pki.parse_validity("10y") == dt.timedelta(days=3650)
    assert pki.parse_validity("1y30d") == dt.timedelta(days=395)
    assert pki.parse_validity("24h") == dt.timedelta(hours=24)
    for bad in ("", "10", "ten years", "0d", "5w"):
        with pytest.raises(ValueError, match="invalid duration"):
            pki.parse_validity(bad)


def test_a_leaf_never_outlives_its_ca():
    ca = pki.create_ca(validity=dt.timedelta(days=10))
    leaf = pki.issue(ca, common_name="x", validity=pki.parse_validity("10y"))
    assert leaf.not_after <= ca.not_after
