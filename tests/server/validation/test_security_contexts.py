"""Security context rules (control/server/validation/security_contexts.py):
seccomp profiles of the pod and its containers.
"""

from __future__ import annotations

import pytest

from tests.server.validation.support import a_container, a_pod, container_errors, errors_of


def test_a_seccomp_profile_type_must_be_known() -> None:
    assert errors_of(a_pod(securityContext={"seccompProfile": {"type": "Strict"}})) == [
        'spec.securityContext.seccompProfile.type: Unsupported value: "Strict": supported values: "Localhost", '
        '"RuntimeDefault", "Unconfined"']


def test_a_seccomp_profile_needs_a_type() -> None:
    assert errors_of(a_pod(securityContext={"seccompProfile": {}})) == [
        "spec.securityContext.seccompProfile.type: Required value: type is required when seccompProfile is set"]


def test_a_localhost_seccomp_profile_needs_a_profile_file() -> None:
    assert container_errors(securityContext={"seccompProfile": {"type": "Localhost"}}) == [
        "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when "
        "seccomp type is Localhost"]


@pytest.mark.parametrize("profile_type", ["RuntimeDefault", "Unconfined"])
def test_only_a_localhost_seccomp_profile_names_a_profile_file(profile_type: str) -> None:
    profile = {"type": profile_type, "localhostProfile": "profiles/audit.json"}
    assert container_errors(securityContext={"seccompProfile": profile}) == [
        'spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "profiles/audit.json": '
        "can only be set when seccomp type is Localhost"]


def test_a_localhost_seccomp_profile_file_stays_under_the_seccomp_directory() -> None:
    profile = {"type": "Localhost", "localhostProfile": "../audit.json"}
    assert errors_of(a_pod(securityContext={"seccompProfile": profile})) == [
        'spec.securityContext.seccompProfile.localhostProfile: Invalid value: "../audit.json": must not contain \'..\'']


def test_valid_seccomp_profiles_pass() -> None:
    pod = a_pod(
        securityContext={"seccompProfile": {"type": "RuntimeDefault"}},
        containers=[a_container(securityContext={
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}})],
    )
    assert errors_of(pod) == []
