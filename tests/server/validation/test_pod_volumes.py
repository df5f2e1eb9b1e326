"""Pod volume rules (control/server/validation/pod_volumes.py): unique DNS-label
names, exactly one source, each source's own fields, projections.
"""

from __future__ import annotations

from tests.server.validation.support import LABEL_MESSAGE, a_container, a_pod, container_errors, errors_of


def test_a_volume_mount_must_name_a_volume() -> None:
    assert container_errors(volumeMounts=[{"name": "data", "mountPath": "/data"}]) == [
        'spec.containers[0].volumeMounts[0].name: Not found: "data"']


def test_a_volume_mount_needs_a_mount_path() -> None:
    pod = a_pod(containers=[a_container(volumeMounts=[{"name": "data"}])], volumes=[{"name": "data", "emptyDir": {}}])
    assert errors_of(pod) == ["spec.containers[0].volumeMounts[0].mountPath: Required value"]


def test_mount_paths_are_unique_within_a_container() -> None:
    mounts = [{"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/data"}]
    pod = a_pod(containers=[a_container(volumeMounts=mounts)],
                volumes=[{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}])
    assert errors_of(pod) == ['spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique']


def test_a_sub_path_may_not_climb_out_of_the_volume() -> None:
    pod = a_pod(containers=[a_container(volumeMounts=[{"name": "a", "mountPath": "/x", "subPath": "../etc"}])],
                volumes=[{"name": "a", "emptyDir": {}}])
    assert errors_of(pod) == [
        "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must not contain '..'"]


def test_volume_names_are_unique() -> None:
    pod = a_pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}])
    assert errors_of(pod) == ['spec.volumes[1].name: Duplicate value: "a"']


def test_a_volume_name_must_be_a_dns_label() -> None:
    assert errors_of(a_pod(volumes=[{"name": "my_data", "emptyDir": {}}])) == [
        f'spec.volumes[0].name: Invalid value: "my_data": {LABEL_MESSAGE}']


def test_a_volume_needs_a_source() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a"}])) == ["spec.volumes[0]: Required value: must specify a volume type"]


def test_a_volume_has_exactly_one_source() -> None:
    volume = {"name": "a", "emptyDir": {}, "hostPath": {"path": "/tmp"}}
    assert errors_of(a_pod(volumes=[volume])) == [
        "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"]


def test_a_secret_volume_needs_a_secret_name() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a", "secret": {}}])) == [
        "spec.volumes[0].secret.secretName: Required value"]


def test_a_volume_default_mode_is_at_most_0777() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a", "configMap": {"name": "c", "defaultMode": 0o1000}}])) == [
        "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), "
        "both inclusive"]


def test_an_nfs_path_must_be_absolute() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a", "nfs": {"server": "nfs", "path": "exports"}}])) == [
        'spec.volumes[0].nfs.path: Invalid value: "exports": must be an absolute path']


def test_a_projected_source_has_exactly_one_kind() -> None:
    volume = {"name": "a", "projected": {"sources": [{}]}}
    assert errors_of(a_pod(volumes=[volume])) == [
        "spec.volumes[0].projected.sources[0]: Required value: must specify exactly 1 volume type"]


def test_volumes_of_every_kind_pass() -> None:
    volumes = [
        {"name": "a", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "b", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "c", "secret": {"secretName": "s", "defaultMode": 0o400, "items": [{"key": "k", "path": "k.txt"}]}},
        {"name": "d", "configMap": {"name": "c"}},
        {"name": "e", "persistentVolumeClaim": {"claimName": "pvc"}},
        {"name": "f", "nfs": {"server": "nfs", "path": "/exports"}},
        {"name": "g", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "h", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}},
    ]
    assert errors_of(a_pod(volumes=volumes)) == []
