"""``sampan create job NAME --from=cronjob/CRON``: kubectl's way to run a CronJob's job template by hand.

Covers: the Job made from the template (labels, annotations, spec) with the
``cronjob.kubernetes.io/instantiate: manual`` annotation and a controlling
reference to the CronJob; --dry-run=client only prints; a --from that names
no cronjob, or a missing cronjob, is one clear error line. The Job actually
running to completion on an agent is in tests/e2e/test_jobs_on_an_agent.py.
"""

from __future__ import annotations

import yaml

from tests.cli import sampan

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    metadata:
      labels: {team: data}
      annotations: {owner: ops}
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
          containers: [{name: dump, image: busybox:1.36, command: [sh, -c, "exit 0"]}]
"""


def cronjob(capsys, control_server, tmp_path) -> dict:
    (tmp_path / "cronjob.yaml").write_text(CRONJOB)
    assert sampan(capsys, control_server, "create", "-f", str(tmp_path / "cronjob.yaml")).code == 0
    return yaml.safe_load(sampan(capsys, control_server, "get", "cronjob", "nightly", "-o", "yaml").out)


def test_create_job_from_a_cronjob_runs_its_template_now(capsys, control_server, tmp_path):
    owner = cronjob(capsys, control_server, tmp_path)
    result = sampan(capsys, control_server, "create", "job", "by-hand", "--from=cronjob/nightly")
    assert (result.code, result.out) == (0, "job.batch/by-hand created\n")
    job = yaml.safe_load(sampan(capsys, control_server, "get", "job", "by-hand", "-o", "yaml").out)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["annotations"]["owner"] == "ops"
    assert job["metadata"]["labels"]["team"] == "data"
    [ref] = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "CronJob", "nightly", owner["metadata"]["uid"], True)
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "exit 0"]


def test_a_dry_run_prints_the_job_without_creating_it(capsys, control_server, tmp_path):
    cronjob(capsys, control_server, tmp_path)
    result = sampan(capsys, control_server, "create", "job", "preview", "--from", "cj/nightly",
                    "--dry-run=client", "-o", "yaml")
    assert result.code == 0
    printed = yaml.safe_load(result.out)
    assert (printed["kind"], printed["metadata"]["name"]) == ("Job", "preview")
    missing = sampan(capsys, control_server, "get", "job", "preview")
    assert missing.code == 1 and "NotFound" in missing.err


def test_from_must_name_an_existing_cronjob(capsys, control_server):
    wrong_kind = sampan(capsys, control_server, "create", "job", "x", "--from=deployment/web")
    assert (wrong_kind.code, wrong_kind.err) == (1, "error: --from must be cronjob/NAME, not 'deployment/web'\n")
    missing = sampan(capsys, control_server, "create", "job", "x", "--from=cronjob/absent")
    assert missing.code == 1
    assert missing.err == 'Error from server (NotFound): cronjobs "absent" not found\n'
