"""How ``sampan up`` chooses its agent's runtime (agent.bootstrap.runtime_choice):
one fact table in, one choice and a reason a user can act on out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.bootstrap.runtime_choice import HostFacts, RuntimeUnavailable, choose_runtime

SYSTEM = "/run/containerd/containerd.sock"
PRIVATE = "/var/lib/sampan/containerd/containerd.sock"

# Root on a machine with everything installed and no containerd running.
ROOT_NOTHING_RUNNING = HostFacts(
    requested="auto", socket=SYSTEM, socket_answers=False, private_socket=PRIVATE, private_socket_answers=False,
    is_root=True, containerd_installed=True, missing_for_private=())


def test_process_runtime_when_asked_for_even_with_containerd_running():
    choice = choose_runtime(replace(ROOT_NOTHING_RUNNING, requested="process", socket_answers=True))
    assert (choice.runtime, choice.reason) == ("process", "--runtime process")


def test_a_containerd_answering_at_the_given_socket_is_used_as_it_is():
    choice = choose_runtime(replace(ROOT_NOTHING_RUNNING, socket_answers=True))
    assert (choice.runtime, choice.socket, choice.start_private) == ("containerd", SYSTEM, False)
    assert choice.reason == f"containerd answers at {SYSTEM}"


def test_a_private_containerd_left_by_an_earlier_up_is_used_not_started_again():
    choice = choose_runtime(replace(ROOT_NOTHING_RUNNING, private_socket_answers=True))
    assert (choice.runtime, choice.socket, choice.start_private) == ("containerd", PRIVATE, False)


def test_root_with_containerd_installed_starts_a_private_containerd():
    choice = choose_runtime(ROOT_NOTHING_RUNNING)
    assert (choice.runtime, choice.socket, choice.start_private) == ("containerd", PRIVATE, True)
    assert choice.reason == f"no containerd answers at {SYSTEM}; starting a private containerd at {PRIVATE}"


@pytest.mark.parametrize(("facts", "why"), [
    (replace(ROOT_NOTHING_RUNNING, containerd_installed=False),
     "containerd is not installed (Debian package 'containerd')"),
    (replace(ROOT_NOTHING_RUNNING, is_root=False), "starting a private containerd needs root"),
    (replace(ROOT_NOTHING_RUNNING, missing_for_private=("runc", "busybox-static")),
     "a private containerd also needs the Debian packages runc, busybox-static"),
])
def test_otherwise_the_process_runtime_and_the_reason_names_what_is_missing(facts, why):
    choice = choose_runtime(facts)
    assert choice.runtime == "process"
    assert choice.reason == f"no containerd answers at {SYSTEM} and {why}"


def test_containerd_required_but_unavailable_is_an_error_not_a_fallback():
    with pytest.raises(RuntimeUnavailable, match="--runtime containerd: no containerd answers .* needs root"):
        choose_runtime(replace(ROOT_NOTHING_RUNNING, requested="containerd", is_root=False))
