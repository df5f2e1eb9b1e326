"""The ``sampan`` entry point: every subcommand and flag, and nothing they do.

Definitions live here; each command's code is ``run(args)`` in
``control/cli/commands/<module>.py``, imported only when that command runs
(so ``sampan control`` never loads the CLI's printers, nor ``sampan get`` the
server). ``main`` parses, runs the command (async ones under
``asyncio.run``) and turns every expected failure into one line on stderr and
exit code 1.

``--server``, ``-n/--namespace`` and ``--config`` are global: they are accepted before the
subcommand and, as kubectl allows, after it (``sampan get pods -n demo``).
Each subcommand declares them again with ``default=SUPPRESS``, so a value
given before the subcommand is not overwritten by the subcommand's default.

A command that runs another (``sampan exec POD -- CMD ARGS...``) sets a
``command_argv`` default: everything after the first ``--`` goes there
untouched, flags included.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys
from typing import Sequence

from control.cli.errors import UsageError, error_line
from control.client_config import CONFIG_ENV

PROG = "sampan"
# Ctrl-C: 0 for commands that run until interrupted (watches), 130 otherwise.
INTERRUPTED_EXIT = 130


class CommandLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 1, as in kubectl."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"error: {message} (see '{self.prog} --help')")


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, which kubectl's boolean flags use (--wait=false)."""
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "y"):
        return True
    if value in ("0", "f", "false", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def global_flags(*, suppress: bool) -> argparse.ArgumentParser:
    """The flags every command accepts; ``suppress`` for the per-subcommand copies."""
    flags = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    flags.add_argument(
        "--server", metavar="HOST:PORT", default=default,
        help="the control service's address (default: $SAMPAN_SERVER, else 127.0.0.1:6443)")
    flags.add_argument(
        "-n", "--namespace", metavar="NAMESPACE", default=default,
        help="the namespace for namespaced kinds (default: default)")
    flags.add_argument(
        "--config", metavar="FILE", default=default,
        help="the client config: server, CA and credentials (default: $SAMPAN_CONFIG, else ~/.sampan/config)")
    return flags


def build_parser() -> CommandLineParser:
    parser = CommandLineParser(
        prog=PROG, parents=[global_flags(suppress=False)],
        description="Sampan: a container orchestrator one person can read end to end.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandLineParser)
    commands.required = True
    common = global_flags(suppress=True)

    def command(name: str, *, module: str, help: str, aliases: Sequence[str] = (),
                client: bool = True) -> CommandLineParser:
        sub = commands.add_parser(name, aliases=list(aliases), help=help, description=help,
                                  parents=[common] if client else [])
        sub.set_defaults(module=f"control.cli.commands.{module}")
        return sub

    _define_apply(command("apply", module="apply", help="Apply a configuration to resources from files or stdin."))
    _define_create(command("create", module="create", help="Create resources from files or from the command line."),
                   common)
    _define_get(command("get", module="get", help="Display one or many resources."))
    _define_describe(command("describe", module="describe", help="Show details of a resource or group of resources."))
    _define_delete(command("delete", module="delete", help="Delete resources by names, files or label selectors."))
    _define_logs(command("logs", module="logs", help="Print the logs for a container in a pod."))
    _define_exec(command("exec", module="exec", help="Execute a command in a container."))
    _define_image(command("image", module="image", help="Manage the images in the nodes' image stores."), common)
    _define_top(command("top", module="top", help="Display resource (CPU/memory) usage of nodes or pods."), common)
    _define_auth(command("auth", module="auth", help="Inspect authorization."), common)
    _define_scale(command("scale", module="scale",
                          help="Set a new size for a deployment, replica set or stateful set."))
    _define_rollout(command("rollout", module="rollout", help="Manage the rollout of a resource."), common)
    _define_set(command("set", module="set_image", help="Set specific features on objects."), common)
    _define_autoscale(command("autoscale", module="autoscale",
                              help="Create a horizontal pod autoscaler for a Deployment, ReplicaSet or StatefulSet."))
    _define_expose(command("expose", module="expose",
                           help="Expose a deployment, replica set, pod or service as a new Service."))
    _define_cordon(command("cordon", module="cordon", help="Mark node as unschedulable."))
    _define_cordon(command("uncordon", module="cordon", help="Mark node as schedulable."))
    _define_drain(command("drain", module="drain", help="Drain node in preparation for maintenance."))
    _define_label(command("label", module="label", help="Update the labels on a resource."), what="label")
    _define_label(command("annotate", module="label", help="Update the annotations on a resource."),
                  what="annotation")
    _define_api_resources(command("api-resources", module="api_resources",
                                  help="Print the supported API resources on the server."))
    _define_version(command("version", module="version", help="Print the client and server version."))
    _define_secrets(command("secrets", module="secrets", help="Manage how Secrets are stored."), common)
    _define_control(command("control", module="control", client=False,
                            help="Run the control service (API server, store, controllers)."))
    _define_agent(command("agent", module="agent",
                          help="Run the node agent: register this machine and run the pods bound to it."))
    _define_proxy(command("proxy", module="proxy",
                          help="Run the service proxy: program this node so that Services' addresses reach their "
                               "pods."))
    _define_up(command("up", module="up", client=False,
                       help="Bring up a single-node cluster on this machine (control service, agent and "
                            "service proxy)."))
    _define_config(command("config", module="config", help="Show or switch the contexts of the client config."),
                   common)
    _define_certs(command("certs", module="certs",
                          help="Check, renew and issue the cluster's certificates (on the machine with the CA)."),
                  common)
    _define_token(command("token", module="token", help="Manage the bootstrap tokens nodes join with."), common)
    _define_simulate_nodes(command(
        "simulate-nodes", module="simulate_nodes",
        help="Register simulated nodes that run their pods without containers (scale tests)."))
    return parser


def _filename_flags(sub: argparse.ArgumentParser, *, required: bool) -> None:
    sub.add_argument("-f", "--filename", action="append", default=[], required=required, metavar="FILE",
                     help="a manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable)")
    sub.add_argument("-R", "--recursive", action="store_true",
                     help="process the directories given with -f recursively")


def _define_apply(sub: argparse.ArgumentParser) -> None:
    _filename_flags(sub, required=True)


def _define_create(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    _filename_flags(sub, required=False)
    sub.add_argument("--dry-run", choices=("none", "client"), default="none",
                     help="client: only print the object that would be created")
    sub.add_argument("-o", "--output", choices=("yaml", "json", "name"),
                     help="print the created object in this format")
    sub.add_argument("--save-config", action="store_true",
                     help="store the manifest in the last-applied annotation, for a later apply")
    # The same flags after the kind (create namespace x -o yaml); SUPPRESS keeps
    # a value given before the kind.
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--dry-run", choices=("none", "client"), default=argparse.SUPPRESS,
                        help="client: only print the object that would be created")
    output.add_argument("-o", "--output", choices=("yaml", "json", "name"), default=argparse.SUPPRESS,
                        help="print the created object in this format")
    what = sub.add_subparsers(dest="what", metavar="KIND", parser_class=CommandLineParser)
    namespace = what.add_parser("namespace", aliases=["ns"], parents=[common, output],
                                help="Create a namespace with the given name.")
    namespace.add_argument("name", metavar="NAME")
    namespace.set_defaults(what="namespace")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE",
                      help="a key and literal value (repeatable)")
    data.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH",
                      help="a file (key: its base name, or KEY) or every file in a directory (repeatable)")
    configmap = what.add_parser("configmap", aliases=["cm"], parents=[common, output, data],
                                help="Create a config map from literals or files.")
    configmap.add_argument("name", metavar="NAME")
    configmap.set_defaults(what="configmap")
    secret = what.add_parser("secret", parents=[common], help="Create a secret.")
    secret_types = secret.add_subparsers(dest="secret_type", metavar="TYPE", parser_class=CommandLineParser)
    secret_types.required = True
    generic = secret_types.add_parser("generic", parents=[common, output, data],
                                      help="Create a secret from literals or files.")
    generic.add_argument("name", metavar="NAME")
    generic.add_argument("--type", default="Opaque", help="the secret's type (default Opaque)")
    secret.set_defaults(what="secret")
    job = what.add_parser("job", parents=[common, output], help="Create a job now from a cronjob's job template.")
    job.add_argument("name", metavar="NAME")
    job.add_argument("--from", dest="from_object", required=True, metavar="cronjob/NAME",
                     help="the cronjob whose jobTemplate the job runs (as a scheduled run would)")
    job.set_defaults(what="job")


def _define_get(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("resources", nargs="*", metavar="KIND[,KIND...] [NAME...] | KIND/NAME ...")
    sub.add_argument("-o", "--output", choices=("wide", "yaml", "json", "name"), help="output format")
    sub.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="label selector (a=b,c!=d,e in (f))")
    sub.add_argument("--field-selector", default="", metavar="SELECTOR",
                     help="field selector (metadata.name=x,spec.nodeName=y)")
    sub.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    sub.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    sub.add_argument("--watch-only", action="store_true", help="watch for changes without listing first")
    sub.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    sub.add_argument("--no-headers", action="store_true", help="print tables without their header")
    sub.add_argument("--ignore-not-found", action="store_true", help="a named object that is missing is no error")


def _define_describe(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("resources", nargs="+", metavar="KIND [NAME...] | KIND/NAME")
    sub.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="label selector")
    sub.add_argument("-A", "--all-namespaces", action="store_true", help="describe across all namespaces")
    sub.add_argument("--show-events", type=parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
                     help="list the object's events (default true)")


def _define_delete(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("resources", nargs="*", metavar="KIND [NAME...] | KIND/NAME")
    _filename_flags(sub, required=False)
    sub.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="delete the objects this selects")
    sub.add_argument("--field-selector", default="", metavar="SELECTOR", help="delete the objects this selects")
    sub.add_argument("--all", action="store_true", help="delete every object of the kind in the namespace")
    sub.add_argument("-A", "--all-namespaces", action="store_true", help="select across all namespaces")
    sub.add_argument("--grace-period", type=int, default=-1, metavar="SECONDS",
                     help="seconds the pod has to stop (-1: the pod's own; 0 only with --force)")
    sub.add_argument("--now", action="store_true", help="--grace-period=1")
    sub.add_argument("--force", action="store_true", help="remove at once, without waiting for the node")
    sub.add_argument("--cascade", nargs="?", const="background", default="background",
                     metavar="background|orphan|foreground",
                     help="what happens to dependents: deleted after (background, the default) or before "
                          "(foreground) the object, or kept (orphan)")
    sub.add_argument("--wait", type=parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
                     help="wait until the objects are gone (default true)")
    sub.add_argument("--timeout", default="0s", metavar="DURATION",
                     help="give up waiting after this long (0s: no limit)")
    sub.add_argument("--ignore-not-found", action="store_true", help="a missing object is no error")


def _define_cordon(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("nodes", nargs="*", metavar="NODE", help="the nodes (or -l)")
    sub.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="the nodes this label selector selects")


def _define_drain(sub: argparse.ArgumentParser) -> None:
    _define_cordon(sub)
    sub.add_argument("--ignore-daemonsets", action="store_true",
                     help="leave DaemonSet-managed pods (they would come back at once) instead of refusing")
    sub.add_argument("--force", action="store_true",
                     help="also delete pods that no controller manages (they are not recreated)")
    sub.add_argument("--delete-emptydir-data", action="store_true",
                     help="also delete pods with emptyDir volumes (their data is lost)")
    sub.add_argument("--grace-period", type=int, default=-1, metavar="SECONDS",
                     help="seconds each pod has to stop (-1: the pod's own)")
    sub.add_argument("--timeout", default="0s", metavar="DURATION",
                     help="give up waiting for the pods to go after this long (0s: no limit)")
    sub.add_argument("--pod-selector", default="", metavar="SELECTOR", help="only the pods this label selector selects")
    sub.add_argument("--skip-wait-for-delete-timeout", type=int, default=0, metavar="SECONDS",
                     help="do not wait for pods deleted more than this long ago (an unreachable node's; 0: wait)")


def _define_label(sub: argparse.ArgumentParser, *, what: str) -> None:
    sub.add_argument("arguments", nargs="+", metavar="KIND NAME... | KIND/NAME... KEY=VALUE... KEY-...",
                     help=f"the objects, then the {what}s to set (KEY=VALUE) or remove (KEY-)")
    sub.add_argument("--overwrite", action="store_true", help=f"allow changing an existing {what}'s value")
    sub.add_argument("--all", action="store_true", help="every object of the kind in the namespace")
    sub.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="the objects this selects")
    sub.add_argument("-A", "--all-namespaces", action="store_true", help="select across all namespaces")
    sub.add_argument("--list", action="store_true", help=f"print each object's {what}s instead of changing them")
    sub.add_argument("--resource-version", default="", metavar="VERSION",
                     help="change the object only if this is still its resourceVersion (one object only)")
    sub.set_defaults(what=what, intermixed="arguments")


def _container_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("pod", metavar="POD", help="the pod's name (or pod/NAME)")
    sub.add_argument("-c", "--container", default="", metavar="NAME",
                     help="the container's name (needed when the pod has several)")


def _define_logs(sub: argparse.ArgumentParser) -> None:
    _container_flags(sub)
    sub.add_argument("-f", "--follow", action="store_true", help="stream new lines until the container stops")
    sub.add_argument("-p", "--previous", action="store_true",
                     help="the logs of the container's previous attempt (before its last restart)")
    sub.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines (-1: all)")
    sub.add_argument("--since", default="", metavar="DURATION", help="only lines newer than this (5s, 2m, 3h)")
    sub.add_argument("--timestamps", action="store_true", help="prefix every line with its RFC 3339 time")


def _define_exec(sub: argparse.ArgumentParser) -> None:
    _container_flags(sub)
    sub.add_argument("-i", "--stdin", action="store_true",
                     help="pass stdin to the command")
    sub.add_argument("-t", "--tty", action="store_true",
                     help="allocate a terminal (with -i: interactive; the local terminal goes raw)")
    sub.set_defaults(command_argv=[])
    sub.usage = f"{PROG} exec POD [-c CONTAINER] [-n NAMESPACE] [-i] [-t] -- COMMAND [ARGS...]"


def _define_image(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=CommandLineParser)
    verbs.required = True
    load = verbs.add_parser("import", parents=[common],
                            help="Load an image archive (OCI layout or docker save tar) into nodes' containerd.")
    load.add_argument("archive", metavar="FILE.tar", help="the image archive")
    load.add_argument("--node", default="", metavar="NAME",
                      help="the node to import into (default: every Ready node, one after another)")


def _define_top(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    what = sub.add_subparsers(dest="what", metavar="nodes|pods", parser_class=CommandLineParser)
    what.required = True
    nodes = what.add_parser("nodes", aliases=["node", "no"], parents=[common],
                            help="CPU and memory of the Ready nodes, against their allocatable.")
    nodes.set_defaults(what="nodes")
    pods = what.add_parser("pods", aliases=["pod", "po"], parents=[common], help="CPU and memory of pods.")
    pods.add_argument("-A", "--all-namespaces", action="store_true", help="pods in every namespace")
    pods.add_argument("--no-headers", action="store_true", help="print the table without its header")
    nodes.add_argument("--no-headers", action="store_true", help="print the table without its header")
    pods.set_defaults(what="pods")


def _define_auth(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    what = sub.add_subparsers(dest="what", metavar="can-i", parser_class=CommandLineParser)
    what.required = True
    can_i = what.add_parser("can-i", parents=[common], help="Check whether an action is allowed: prints yes "
                                                           "(exit 0) or no (exit 1).")
    can_i.add_argument("verb", metavar="VERB", help="get, list, watch, create, update, patch, delete, ... or '*'")
    can_i.add_argument("resource", metavar="KIND[/NAME]", help="the kind (pods, deployments.apps, '*'), "
                                                              "optionally with an object's name")
    can_i.add_argument("name", nargs="?", default="", metavar="NAME", help="the object's name")
    can_i.add_argument("--subresource", default="", metavar="SUB", help="a subresource, such as log or exec")
    can_i.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    can_i.add_argument("--as", dest="as_user", default="", metavar="USER",
                       help="ask about this user instead (needs create on subjectaccessreviews)")
    can_i.add_argument("--as-group", dest="as_groups", action="append", default=[], metavar="GROUP",
                       help="a group of the --as user (repeat for several)")
    can_i.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit code answers")


def _define_scale(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("resources", nargs="+", metavar="KIND/NAME",
                     help="the objects: KIND/NAME ... or KIND NAME ...")
    sub.add_argument("--replicas", type=int, default=None, metavar="COUNT", help="the new number of replicas")
    sub.add_argument("--current-replicas", type=int, default=-1, metavar="COUNT",
                     help="precondition: scale only if the object has this many replicas now (-1: any)")


def _define_rollout(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=CommandLineParser)
    verbs.required = True
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("resources", nargs="+", metavar="KIND/NAME",
                        help="the objects: KIND/NAME ... or KIND NAME ...")
    status = verbs.add_parser("status", parents=[common, target], help="Show the status of the rollout.")
    status.add_argument("-w", "--watch", type=parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
                        help="follow the rollout until it is done (default true)")
    status.add_argument("--timeout", default="0s", metavar="DURATION",
                        help="give up waiting after this long (0s: no limit)")
    status.add_argument("--revision", type=int, default=0, metavar="N",
                        help="pin the status to this revision (0: the latest)")
    history = verbs.add_parser("history", parents=[common, target], help="View rollout history.")
    history.add_argument("--revision", type=int, default=0, metavar="N",
                         help="show the pod template of this revision")
    undo = verbs.add_parser("undo", parents=[common, target], help="Undo a previous rollout.")
    undo.add_argument("--to-revision", type=int, default=0, metavar="N",
                      help="the revision to roll back to (0: the previous one)")
    verbs.add_parser("pause", parents=[common, target], help="Mark the provided resource as paused.")
    verbs.add_parser("resume", parents=[common, target], help="Resume a paused resource.")
    verbs.add_parser("restart", parents=[common, target], help="Restart a resource (roll out every pod again).")


def _define_set(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    what = sub.add_subparsers(dest="what", metavar="image", parser_class=CommandLineParser)
    what.required = True
    image = what.add_parser("image", parents=[common],
                            help="Update the images of a pod template (or a pod's containers).")
    image.add_argument("arguments", nargs="+", metavar="KIND/NAME|CONTAINER=IMAGE",
                       help="the objects, then one or more CONTAINER=IMAGE (*=IMAGE: every container)")
    image.set_defaults(module="control.cli.commands.set_image")


def _define_autoscale(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("target", nargs="+", metavar="KIND/NAME",
                     help="what to autoscale: deployment/web, statefulset/db (or KIND NAME: replicaset web)")
    sub.add_argument("--min", type=int, default=-1, metavar="N",
                     help="the fewest pods the autoscaler may leave (default: the server's, 1)")
    sub.add_argument("--max", type=int, default=-1, metavar="N",
                     help="the most pods the autoscaler may make (required)")
    sub.add_argument("--cpu-percent", type=int, default=-1, metavar="PERCENT",
                     help="the pods' average CPU use to aim at, in percent of their requests "
                          "(default: the server's, 80)")
    sub.add_argument("--name", default="", help="the autoscaler's name (default: the target's)")
    sub.add_argument("--dry-run", choices=("none", "client"), default="none",
                     help="client: only print the autoscaler that would be created")
    sub.add_argument("-o", "--output", choices=("yaml", "json", "name"),
                     help="print the created autoscaler in this format")


def _define_expose(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("target", nargs="+", metavar="KIND/NAME",
                     help="what to expose: deployment/web, replicaset/web, pod/web, service/web (or KIND NAME)")
    sub.add_argument("--port", type=int, default=None, metavar="PORT",
                     help="the Service's port (default: each container port of the pods)")
    sub.add_argument("--target-port", default="", metavar="PORT|NAME",
                     help="the pods' port, a number or a container port's name (default: the port)")
    sub.add_argument("--protocol", default="", choices=("", "TCP", "UDP", "SCTP"), metavar="TCP|UDP|SCTP",
                     help="the port's protocol (default: the container port's, else TCP)")
    sub.add_argument("--type", default="", metavar="ClusterIP|NodePort|LoadBalancer",
                     help="the Service's type (default ClusterIP)")
    sub.add_argument("--cluster-ip", default="", metavar="IP|None",
                     help="the cluster IP to ask for, or None for a headless Service (default: allocated)")
    sub.add_argument("--name", default="", help="the Service's name (default: the object's)")
    sub.add_argument("-l", "--selector", default="", metavar="KEY=VALUE,...",
                     help="the pods the Service selects (default: the object's selector or labels)")
    sub.add_argument("--dry-run", choices=("none", "client"), default="none",
                     help="client: only print the Service that would be created")
    sub.add_argument("-o", "--output", choices=("yaml", "json", "name"),
                     help="print the created Service in this format")


def parse_command_line(parser: CommandLineParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse argv; for a command taking ``command_argv``, what follows ``--`` is that."""
    if "--" in argv:
        at = argv.index("--")
        try:
            args, extra = parser.parse_known_args(argv[:at])
        except UsageError:
            args = None
        if args is not None and hasattr(args, "command_argv"):
            args.command_argv = argv[at + 1:]
            return args, extra
    return parser.parse_known_args(argv)


def _define_api_resources(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-o", "--output", choices=("wide", "name"), help="output format")
    sub.add_argument("--namespaced", type=parse_bool, default=None, metavar="BOOL",
                     help="only namespaced (true) or cluster-scoped (false) kinds")
    sub.add_argument("--no-headers", action="store_true", help="print the table without its header")


def _define_version(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--client", action="store_true", help="print the client version only")


def _define_secrets(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=CommandLineParser)
    verbs.required = True
    verbs.add_parser("reencrypt", parents=[common],
                     help="Rewrite every Secret (in -n NAMESPACE, else in all) with the control service's "
                          "current encryption key, after a key rotation.")


def _define_control(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--store", default="sqlite:///var/lib/sampan/state.db", metavar="URL",
                     help="state store: sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...] (etcd members, "
                          "tried in order)")
    sub.add_argument("--etcd-cafile", default=None, metavar="FILE",
                     help="talk TLS to the etcd store: the CA (PEM) its members' certificates are checked against")
    sub.add_argument("--etcd-certfile", default=None, metavar="FILE",
                     help="the client certificate (PEM) presented to etcd members run with --client-cert-auth")
    sub.add_argument("--etcd-keyfile", default=None, metavar="FILE", help="the key (PEM) of --etcd-certfile")
    sub.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT", help="the API's gRPC address")
    sub.add_argument("--metrics-listen", default="127.0.0.1:10249", metavar="HOST:PORT",
                     help="the Prometheus /metrics address ('' to disable)")
    _control_tls_flags(sub)
    sub.add_argument("--compaction-interval", type=float, default=None, metavar="SECONDS",
                     help="compact store history older than this, this often (default 300)")
    sub.add_argument("--event-ttl", type=float, default=None, metavar="SECONDS",
                     help="delete Events this long after they last happened (default 3600)")
    sub.add_argument("--scheduler-config", default=None, metavar="FILE",
                     help="the scheduler's profiles and plugins, as a KubeSchedulerConfiguration YAML file")
    sub.add_argument("--node-monitor-grace-period", type=float, default=None, metavar="SECONDS",
                     help="a node heard from neither by its Lease nor its status for this long becomes "
                          "Unknown and unreachable (default 50)")
    sub.add_argument("--node-monitor-period", type=float, default=None, metavar="SECONDS",
                     help="how often node health is checked (default 5)")
    sub.add_argument("--node-eviction-rate", type=float, default=None, metavar="NODES_PER_SECOND",
                     help="how many unhealthy nodes a second get the NoExecute taint that evicts their pods, "
                          "while a zone is healthy (default 0.1)")
    sub.add_argument("--service-cidr", default=None, metavar="CIDR",
                     help="the IPv4 range Services' cluster IPs come from (default 10.96.0.0/12)")
    sub.add_argument("--service-node-port-range", default=None, metavar="FIRST-LAST",
                     help="the ports NodePort Services' node ports come from (default 30000-32767)")
    sub.add_argument("--cluster-dns-listen", default="", metavar="IP:PORT",
                     help="where the leader serves cluster DNS, UDP and TCP (default: off; sampan up uses "
                          "0.0.0.0:10053); pods reach it through the kube-dns Service (10.96.0.10:53) only if "
                          "this is an address they can route to, such as 0.0.0.0 or the node's address")
    sub.add_argument("--cluster-dns-advertise-address", default=None, metavar="IP",
                     help="the address the kube-dns endpoints name (default: the listen address, or for "
                          "0.0.0.0 this machine's first global IPv4 address)")
    sub.add_argument("--cluster-domain", default="cluster.local", metavar="DOMAIN",
                     help="the domain the cluster DNS answers for (Services are SERVICE.NAMESPACE.svc.DOMAIN)")
    sub.add_argument("--default-toleration-seconds", type=int, default=None, metavar="SECONDS",
                     help="how long pods tolerate a not-ready or unreachable node unless they say otherwise "
                          "(default 300)")
    sub.add_argument("--leader-elect", type=parse_bool, default=True, metavar="BOOL",
                     help="run the scheduler and controllers only while holding the leader Lease "
                          "(kube-system/sampan-control-plane), so several replicas can share one store "
                          "(default true; false: this replica always runs them)")
    sub.add_argument("--leader-elect-lease-duration", type=float, default=None, metavar="SECONDS",
                     help="whole seconds the other replicas wait, after the lease last changed, "
                          "before taking it (default 15)")
    sub.add_argument("--leader-elect-renew-deadline", type=float, default=None, metavar="SECONDS",
                     help="the leader stops leading when it has not renewed the lease for this long "
                          "(default 10; less than the lease duration)")
    sub.add_argument("--leader-elect-retry-period", type=float, default=None, metavar="SECONDS",
                     help="how often the leader renews and the others try (default 2)")
    sub.add_argument("--identity", default=None, metavar="NAME",
                     help="this replica's name in the leader Lease, unique among the replicas "
                          "(default: the hostname and a random suffix)")
    sub.add_argument("--encryption-provider-config", default=None, metavar="FILE",
                     help="an EncryptionConfiguration (YAML) whose keys encrypt Secrets in the store; the first "
                          "aesgcm key encrypts, all decrypt (default on SQLite: encryption-config.yaml next to the "
                          "database, created with a fresh key; on etcd: none, Secrets stored unencrypted)")
    sub.add_argument("--secrets-encryption", type=parse_bool, default=True, metavar="BOOL",
                     help="false: without --encryption-provider-config, store Secrets unencrypted (default true)")
    sub.add_argument("--audit-log-path", default="", metavar="FILE",
                     help="append one JSON line per mutating request to FILE (default: no audit log)")
    sub.add_argument("--audit-level", choices=("none", "metadata", "request"), default="metadata",
                     help="metadata: who did what to which object and the result; request: also the request's "
                          "object (Secret values redacted); none: nothing (default metadata)")
    sub.add_argument("--max-requests-inflight-per-user", type=int, default=None, metavar="N",
                     help="requests one user may have in flight before more are refused with "
                          "RESOURCE_EXHAUSTED (default 100; nodes have their own pool; not in plain-text mode)")
    sub.add_argument("--max-requests-inflight", type=int, default=None, metavar="N",
                     help="requests all users together may have in flight (default 400)")


def _control_tls_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--pki-dir", default="/var/lib/sampan/pki", metavar="DIR",
                     help="the cluster CA and the service's certificates (created on first start; an operator's "
                          "own ca.crt/ca.key put there first is used)")
    sub.add_argument("--cert-validity", default="1y", metavar="DURATION",
                     help="lifetime of the certificates the CA signs: 1y (default), 10y, 90d, 24h")
    sub.add_argument("--tls-san", action="append", default=[], metavar="NAME|IP",
                     help="an extra name or address for the server certificate (repeatable; localhost, "
                          "this host's name and addresses are always in it)")
    sub.add_argument("--admin-config", default="/var/lib/sampan/admin.config", metavar="FILE",
                     help="where to write the administrator's client config (server, CA, admin certificate "
                          "and key) at every start ('' not to); use it with --config FILE or $SAMPAN_CONFIG")
    sub.add_argument("--insecure-plaintext", action="store_true",
                     help="serve without TLS: no client is authenticated and every caller is an administrator "
                          "(a warning is logged at every start)")


def _define_agent(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--node-name", default=None, metavar="NAME", help="the Node's name (default: the hostname)")
    sub.add_argument("--data-dir", default="/var/lib/sampan/agent", metavar="DIR",
                     help="pod directories, volumes, logs and the process runtime's state")
    sub.add_argument("--runtime", choices=("auto", "containerd", "process"), default="auto",
                     help="auto: containerd if its socket answers, else the process runtime")
    sub.add_argument("--containerd-socket", default="/run/containerd/containerd.sock", metavar="PATH")
    sub.add_argument("--pod-cidr", default="", metavar="CIDR", help="this node's pod network, e.g. 10.244.1.0/24")
    sub.add_argument("--node-ip", default="", metavar="IP", help="the node's InternalIP (default: detected)")
    sub.add_argument("--node-labels", default="", metavar="K=V,...", help="labels to put on the Node")
    sub.add_argument("--metrics-listen", default="127.0.0.1:10250", metavar="HOST:PORT",
                     help="the Prometheus /metrics address ('' to disable)")
    sub.add_argument("--listen", default="0.0.0.0:10251", metavar="HOST:PORT",
                     help="the agent's gRPC address for logs and exec, which the control service relays to "
                          "(mutual TLS: only the control service may call it)")
    _node_tls_flags(sub, who="agent")
    sub.add_argument("--restart-backoff", type=float, default=10.0, metavar="SECONDS",
                     help="first container restart back-off (doubles each crash)")
    sub.add_argument("--restart-backoff-max", type=float, default=300.0, metavar="SECONDS",
                     help="the longest container restart back-off")
    sub.add_argument("--cluster-dns", default="10.96.0.10", metavar="IP[,IP...]",
                     help="the nameservers of pods with dnsPolicy ClusterFirst (the kube-dns Service's cluster "
                          "IP; '' to give them the host's resolvers instead)")
    sub.add_argument("--cluster-domain", default="cluster.local", metavar="DOMAIN",
                     help="the cluster's DNS domain, for pods' search paths")
    sub.add_argument("--resolv-conf", default="/etc/resolv.conf", metavar="PATH",
                     help="the host's resolver file, the base of pods' DNS ('' for none)")
    sub.add_argument("--pod-routes", type=parse_bool, default=True, metavar="BOOL",
                     help="keep a route to every other node's pod CIDR through that node's address "
                          "(needs root; default true)")


def _define_proxy(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--node-name", default=None, metavar="NAME",
                     help="the Node this proxy runs on (its addresses serve NodePorts; default: the hostname)")
    sub.add_argument("--mode", choices=("auto", "ipvs", "nftables", "userspace"), default="auto",
                     help="auto: ipvs if the kernel has IPVS, else nftables if nft works and we are root, "
                          "else userspace")
    sub.add_argument("--metrics-listen", default="127.0.0.1:10256", metavar="HOST:PORT",
                     help="the Prometheus /metrics address ('' to disable)")
    sub.add_argument("--min-sync-period", type=float, default=0.1, metavar="SECONDS",
                     help="syncs run at most this often; changes meanwhile are applied together (default 0.1)")
    sub.add_argument("--sync-period", type=float, default=30.0, metavar="SECONDS",
                     help="how often everything is rewritten from scratch, whether or not anything changed "
                          "(default 30)")
    sub.add_argument("--cluster-cidr", default="", metavar="CIDR",
                     help="the pods' addresses: traffic to a ClusterIP from outside this range is masqueraded "
                          "(default: none is)")
    sub.add_argument("--ipvs-scheduler", default="", metavar="NAME",
                     help="the IPVS scheduler in ipvs mode (default rr)")
    sub.add_argument("--cleanup", action="store_true",
                     help="remove the rules every proxy mode may have left on this machine, then exit")
    _node_tls_flags(sub, who="proxy")


def _node_tls_flags(sub: argparse.ArgumentParser, *, who: str) -> None:
    sub.add_argument("--pki-dir", default="/var/lib/sampan/agent/pki", metavar="DIR",
                     help="the node's credentials: ca.crt, client.crt/client.key (system:node:NAME)"
                          + (", serving.crt/serving.key (the agent API's)" if who == "agent" else
                             " (the agent's, shared)") + " (default /var/lib/sampan/agent/pki)")
    sub.add_argument("--insecure-plaintext", action="store_true",
                     help="talk to a control service started with --insecure-plaintext"
                          + (", and serve the agent API unauthenticated" if who == "agent" else "")
                          + " (a warning is logged at every start)")
    if who == "agent":
        sub.add_argument("--token", default=None, metavar="K10<CA HASH>::ID.SECRET",
                         help="join the cluster with this bootstrap token ('sampan token create' prints one) when "
                              "--pki-dir holds no valid client certificate: the server's CA is checked against "
                              "the token's hash before the token is sent")


def _define_token(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=CommandLineParser)
    verbs.required = True
    create = verbs.add_parser("create", parents=[common],
                              help="Create a bootstrap token and print the join token for 'sampan agent --token'.")
    create.add_argument("--ttl", default="24h", metavar="DURATION",
                        help="how long the token is valid, e.g. 24h, 30m, 7d; 0 for ever (default 24h)")
    create.add_argument("--description", default="", metavar="TEXT", help="what the token is for")
    create.add_argument("--ca-file", default=None, metavar="FILE",
                        help="the cluster CA certificate whose hash the join token carries (default: the CA of "
                             "the client config's current context, else /var/lib/sampan/pki/ca.crt)")
    listing = verbs.add_parser("list", parents=[common], help="List the bootstrap tokens.")
    listing.add_argument("--no-headers", action="store_true", help="print the table without its header")
    delete = verbs.add_parser("delete", parents=[common], help="Delete bootstrap tokens (by id or id.secret).")
    delete.add_argument("ids", nargs="+", metavar="ID")


def _define_config(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=CommandLineParser)
    verbs.required = True
    contexts = verbs.add_parser("get-contexts", parents=[common], help="Describe one or many contexts.")
    contexts.add_argument("names", nargs="*", metavar="NAME", help="only these contexts")
    contexts.add_argument("-o", "--output", choices=("name",), help="print only the contexts' names")
    contexts.add_argument("--no-headers", action="store_true", help="print the table without its header")
    use = verbs.add_parser("use-context", aliases=["use"], parents=[common],
                           help="Set the current-context in the config file.")
    use.add_argument("name", metavar="CONTEXT_NAME")
    use.set_defaults(verb="use-context")
    verbs.add_parser("current-context", parents=[common], help="Display the current-context.")


def _define_certs(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=CommandLineParser)
    verbs.required = True
    pki_dir = argparse.ArgumentParser(add_help=False)
    pki_dir.add_argument("--pki-dir", default="/var/lib/sampan/pki", metavar="DIR",
                         help="the control service's PKI directory (default /var/lib/sampan/pki)")
    verbs.add_parser("check-expiration", parents=[common, pki_dir],
                     help="Check when the cluster CA and the control service's certificates expire.")
    renew = verbs.add_parser("renew", parents=[common, pki_dir],
                             help="Renew the control service's certificates (a running service serves a renewed "
                                  "server certificate from its next connection on).")
    renew.add_argument("name", metavar="all|server|control-client|admin")
    renew.add_argument("--cert-validity", default="1y", metavar="DURATION",
                       help="the renewed certificates' lifetime (default 1y; 10y accepted)")
    renew.add_argument("--admin-config", default="/var/lib/sampan/admin.config", metavar="FILE",
                       help="the administrator's client config to update when the admin certificate is "
                            "renewed, if it exists")
    user = verbs.add_parser("issue-user", parents=[common, pki_dir],
                            help="Sign a client certificate for a user and write a ready client config for them.")
    user.add_argument("name", metavar="NAME", help="the user's name (the certificate's CN)")
    user.add_argument("--group", action="append", default=[], metavar="GROUP",
                      help="a group of the user (the certificate's O; repeatable)")
    user.add_argument("--validity", default="1y", metavar="DURATION",
                      help="the certificate's lifetime (default 1y; 10y, 90d, 24h ...)")
    user.add_argument("--out", required=True, metavar="FILE", help="where to write the user's client config")


def _define_simulate_nodes(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--count", type=int, required=True, metavar="N", help="how many nodes")
    sub.add_argument("--pods-per-node", type=int, default=110, metavar="M", help="each node's pod capacity")
    sub.add_argument("--name-prefix", default="hollow-", metavar="PREFIX",
                     help="node names are PREFIX0 .. PREFIX<N-1> (default hollow-)")
    sub.add_argument("--cpu", default="4", metavar="QUANTITY", help="each node's allocatable CPU")
    sub.add_argument("--memory", default="16Gi", metavar="QUANTITY", help="each node's allocatable memory")
    sub.add_argument("--labels", default="", metavar="K=V,...", help="labels to put on every node")
    sub.add_argument("--taints", default="", metavar="K[=V]:EFFECT,...",
                     help="taints every node is registered with (EFFECT: NoSchedule, PreferNoSchedule, NoExecute)")
    sub.add_argument("--lease-interval", type=float, default=10.0, metavar="SECONDS",
                     help="how often each node renews its Lease")
    sub.add_argument("--status-interval", type=float, default=300.0, metavar="SECONDS",
                     help="how often each node rewrites its status")


def _define_up(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--data-dir", default=_default_up_data_dir(), metavar="DIR",
                     help="the store, the agent's data, a private containerd's and the logs "
                          "(default: /var/lib/sampan as root, else ~/.local/share/sampan)")
    sub.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT", help="the API's gRPC address")
    sub.add_argument("--node-name", default=None, metavar="NAME", help="this machine's Node name (default: hostname)")
    sub.add_argument("--runtime", choices=("auto", "containerd", "process"), default="auto",
                     help="auto: the containerd at --containerd-socket if it answers, else a private containerd "
                          "(as root, containerd installed), else the process runtime")
    sub.add_argument("--containerd-socket", default="/run/containerd/containerd.sock", metavar="PATH",
                     help="a running containerd to use")
    sub.add_argument("--pod-cidr", default="10.244.0.0/24", metavar="CIDR",
                     help="this node's pod network (a private containerd's pods get addresses from it)")
    sub.add_argument("--pod-bridge", default="sampan0", metavar="NAME",
                     help="the Linux bridge a private containerd's pods join")
    sub.add_argument("--control-metrics-listen", default="127.0.0.1:10249", metavar="HOST:PORT")
    sub.add_argument("--agent-metrics-listen", default="127.0.0.1:10250", metavar="HOST:PORT")
    sub.add_argument("--proxy-metrics-listen", default="127.0.0.1:10256", metavar="HOST:PORT")
    sub.add_argument("--proxy-mode", choices=("auto", "ipvs", "nftables", "userspace"), default="auto",
                     help="the service proxy's mode (see sampan proxy --help)")
    sub.add_argument("--cluster-dns-listen", default="0.0.0.0:10053", metavar="IP:PORT",
                     help="where cluster DNS listens (0.0.0.0: this machine's address); pods reach it as "
                          "10.96.0.10:53 through the proxy ('' to disable)")
    sub.add_argument("--agent-listen", default="0.0.0.0:10251", metavar="HOST:PORT",
                     help="the agent's gRPC address for logs and exec (port 0: any free port)")


def _default_up_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/sampan"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "sampan")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sampan`` with argv (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args, extra = parse_command_line(parser, list(sys.argv[1:] if argv is None else argv))
        intermixed = getattr(args, "intermixed", None)
        if intermixed and extra and not any(argument.startswith("-") for argument in extra):
            # Positionals that continue after flags (label pods --all app=web), as kubectl allows.
            setattr(args, intermixed, [*getattr(args, intermixed), *extra])
            extra = []
        if extra:
            what = "unknown flag" if extra[0].startswith("-") else "unexpected argument"
            raise UsageError(f"error: {what}: {extra[0]} (see '{PROG} {args.command} --help')")
    except UsageError as err:
        print(err, file=sys.stderr)
        return 1
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    if getattr(args, "config", None):
        # Every client in this process (and the children of sampan up) reads the config from here.
        os.environ[CONFIG_ENV] = os.path.abspath(os.path.expanduser(args.config))
    run = importlib.import_module(args.module).run
    try:
        if inspect.iscoroutinefunction(run):
            return asyncio.run(run(args))
        return run(args)
    except KeyboardInterrupt:
        return 0 if getattr(args, "watch", False) or getattr(args, "watch_only", False) else INTERRUPTED_EXIT
    except BrokenPipeError:
        # The reader went away (sampan get pods | head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # noqa: BLE001 - only expected errors are worded; others re-raise
        line = error_line(err, server=getattr(args, "server", None))
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
