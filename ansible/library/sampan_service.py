#!/usr/bin/python
"""Ansible module: start, stop or restart one of Sampan's services, under
systemd or, where there is none, under ``sampan-supervise`` (pidfiles).

The roles name a service once and pick the manager with
``sampan_service_manager``; this module hides the difference, reports
``changed`` only when it started, stopped or restarted something, and
supports check mode.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: sampan_service
short_description: Manage a Sampan service under systemd or sampan-supervise
description:
  - Starts, stops or restarts a service named by a systemd unit, or by a
    definition in /etc/sampan/services for sampan-supervise.
options:
  name:
    description: The service's name (the unit without .service).
    type: str
    required: true
  state:
    description: What the service should be.
    type: str
    choices: [started, stopped, restarted]
    default: started
  manager:
    description: systemd, or supervised (sampan-supervise, for machines without systemd).
    type: str
    choices: [systemd, supervised]
    default: systemd
  enabled:
    description: Under systemd, whether the unit starts at boot (ignored when supervised).
    type: bool
    default: true
  daemon_reload:
    description: Under systemd, reload unit files first.
    type: bool
    default: false
  supervisor:
    description: Path of sampan-supervise.
    type: str
    default: /opt/sampan/bin/sampan-supervise
author: Sampan
"""

EXAMPLES = r"""
- name: Run the control service
  sampan_service:
    name: sampan-control
    manager: supervised
"""

RETURN = r"""
running:
  description: Whether the service runs after the module did its work.
  type: bool
  returned: always
"""


def _supervised(module: AnsibleModule, *, name: str, state: str, supervisor: str) -> dict:
    running = False
    if os.path.exists(supervisor):
        rc, _out, _err = module.run_command([supervisor, "status", name])
        running = rc == 0
    wanted_running = state != "stopped"
    changed = state == "restarted" or running != wanted_running
    if changed and not module.check_mode:
        verb = {"started": "start", "stopped": "stop", "restarted": "restart"}[state]
        rc, out, err = module.run_command([supervisor, verb, name])
        if rc != 0:
            module.fail_json(msg=f"sampan-supervise {verb} {name} failed: {err or out}", rc=rc)
    return {"changed": changed, "running": wanted_running}


def _systemd(module: AnsibleModule, *, name: str, state: str, enabled: bool, daemon_reload: bool) -> dict:
    systemctl = module.get_bin_path("systemctl", required=True)
    if daemon_reload and not module.check_mode:
        module.run_command([systemctl, "daemon-reload"], check_rc=True)
    unit = f"{name}.service"
    rc, _out, _err = module.run_command([systemctl, "is-active", "--quiet", unit])
    running = rc == 0
    rc, _out, _err = module.run_command([systemctl, "is-enabled", "--quiet", unit])
    is_enabled = rc == 0
    changed = False
    if state != "stopped" and enabled != is_enabled:
        changed = True
        if not module.check_mode:
            module.run_command([systemctl, "enable" if enabled else "disable", unit], check_rc=True)
    if state == "stopped" and is_enabled:
        changed = True
        if not module.check_mode:
            module.run_command([systemctl, "disable", unit], check_rc=True)
    verb = None
    if state == "restarted":
        verb = "restart"
    elif state == "started" and not running:
        verb = "start"
    elif state == "stopped" and running:
        verb = "stop"
    if verb:
        changed = True
        if not module.check_mode:
            module.run_command([systemctl, verb, unit], check_rc=True)
    return {"changed": changed, "running": state != "stopped"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["started", "stopped", "restarted"], "default": "started"},
            "manager": {"type": "str", "choices": ["systemd", "supervised"], "default": "systemd"},
            "enabled": {"type": "bool", "default": True},
            "daemon_reload": {"type": "bool", "default": False},
            "supervisor": {"type": "str", "default": "/opt/sampan/bin/sampan-supervise"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["manager"] == "supervised":
        result = _supervised(module, name=params["name"], state=params["state"], supervisor=params["supervisor"])
    else:
        result = _systemd(module, name=params["name"], state=params["state"], enabled=params["enabled"],
                          daemon_reload=params["daemon_reload"])
    module.exit_json(name=params["name"], **result)


if __name__ == "__main__":
    main()
