"""``sampan get`` and ``sampan describe`` for the workload kinds, end to end
against a real control service process with its controllers running:
real Kubernetes manifests applied, kubectl's tables printed, a Deployment
described with the ReplicaSet its controller made for it, and an invalid
workload refused with the field path and rule."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from tests.cli import sampan

MANIFESTS = Path(__file__).parent.parent / "api" / "manifests"
APPLIED = ("nginx-deployment.yaml", "pi-job.yaml", "hello-cronjob.yaml", "php-apache-hpa.yaml",
           "web-statefulset.yaml")
DEADLINE_SECONDS = 30


@pytest.fixture
def cluster(capsys, control_server):
    for name in APPLIED:
        assert sampan(capsys, control_server, "apply", "-f", str(MANIFESTS / name)).code == 0
    return control_server


@pytest.mark.parametrize(("resource", "header", "name"), [
    ("deployments", "NAME READY UP-TO-DATE AVAILABLE AGE", "nginx-deployment"),
    ("jobs", "NAME STATUS COMPLETIONS DURATION AGE", "pi"),
    ("cronjobs", "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE", "hello"),
    ("hpa", "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE", "php-apache"),
    ("sts", "NAME READY AGE", "web"),
])
def test_each_workload_kind_prints_kubectls_table(capsys, cluster, resource: str, header: str, name: str):
    result = sampan(capsys, cluster, "get", resource)
    assert result.code == 0
    assert result.lines[0].split() == header.split()
    assert result.lines[1].split()[0] == name


def test_wide_tables_add_containers_images_and_selector(capsys, cluster):
    deployment = sampan(capsys, cluster, "get", "deployment", "nginx-deployment", "-o", "wide").lines
    assert deployment[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert deployment[1].split()[-3:] == ["nginx", "nginx:1.14.2", "app=nginx"]
    cron_job = sampan(capsys, cluster, "get", "cronjob", "hello").lines[1].split()
    assert cron_job[1:8] == ["*", "*", "*", "*", "*", "<none>", "False"]
    hpa = sampan(capsys, cluster, "get", "hpa", "php-apache").lines[1].split()
    assert hpa[1:5] == ["Deployment/php-apache", "cpu:", "<unknown>/50%", "1"]


def test_describe_deployment_shows_the_replica_set_its_controller_made(capsys, cluster):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        result = sampan(capsys, cluster, "describe", "deployment", "nginx-deployment")
        assert result.code == 0
        if "NewReplicaSet:" in result.out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert re.search(r"^NewReplicaSet:\s+nginx-deployment-[a-z0-9]+ \(\d+/3 replicas created\)$", result.out,
                     re.MULTILINE), result.out
    assert re.search(r"^OldReplicaSets:\s+<none>$", result.out, re.MULTILINE)
    assert re.search(r"^StrategyType:\s+RollingUpdate$", result.out, re.MULTILINE)
    assert "Pod Template:\n  Labels:  app=nginx\n  Containers:\n   nginx:\n" in result.out


@pytest.mark.parametrize("name", APPLIED)
def test_applying_a_workload_again_changes_nothing(capsys, cluster, name: str):
    # The API keeps the generated parts (a Job's selector) and the status out of the way.
    result = sampan(capsys, cluster, "apply", "-f", str(MANIFESTS / name))
    assert result.code == 0
    assert result.out.strip().endswith("unchanged"), result.out


def test_an_invalid_deployment_is_refused_with_the_field_and_rule(capsys, control_server, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: bad}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: api}}
            spec:
              containers: [{name: web, image: nginx:1.25}]
        """))
    result = sampan(capsys, control_server, "apply", "-f", str(path))
    assert result.code != 0
    assert "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`" in result.err
