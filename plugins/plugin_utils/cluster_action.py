# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of every module of this collection that talks to a cluster (each one's plugins/action/NAME.py
is this class): the module runs as usual, with the connection options a play gave kubernetes.core's modules too.

A play that sets `module_defaults: {group/kubernetes.core.k8s: {kubeconfig: ...}}` (what kubernetes.core users
already have) reaches kubernetes.core's modules only: Ansible gives a group's defaults to its own members, and a
collection cannot join another's group. Without this, such a play's toolhive.k8s tasks would silently talk to the
default kubeconfig's cluster. Precedence stays Ansible's: the task's arguments and `group/toolhive.k8s.k8s` (already
merged into the arguments) win over kubernetes.core's group.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.toolhive.k8s.plugins.module_utils.client import AUTH_ARG_SPEC

KUBERNETES_CORE_GROUP = "group/kubernetes.core.k8s"


def connection_names():
    """{option or alias: the option} of the connection options the modules share."""
    names = {}
    for option, spec in AUTH_ARG_SPEC.items():
        for name in [option] + list(spec.get("aliases", [])):
            names[name] = option
    return names


def kubernetes_core_defaults(module_defaults):
    """The play's module_defaults for kubernetes.core's group (a list of dicts, later ones win)."""
    merged = {}
    for defaults in module_defaults or []:
        merged.update(defaults.get(KUBERNETES_CORE_GROUP) or {})
    return merged


def with_kubernetes_core_defaults(args, defaults):
    """ARGS plus each connection option of DEFAULTS that ARGS sets under none of its names."""
    names = connection_names()
    given = {names[name] for name in args if name in names}
    extra = {name: value for name, value in defaults.items() if name in names and names[name] not in given}
    return dict(extra, **args)


class ClusterAction(ActionBase):
    """Run the task's module with kubernetes.core's module_defaults for the connection options it lacks."""

    def run(self, tmp=None, task_vars=None):
        result = super(ClusterAction, self).run(tmp, task_vars)
        defaults = self._templar.template(kubernetes_core_defaults(self._task.module_defaults))
        args = with_kubernetes_core_defaults(self._task.args, defaults)
        result.update(self._execute_module(module_args=args, task_vars=task_vars))
        return result
