# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs on the controller (no module to start): a job's variables, checked before anything else."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.toolhive.k8s.plugins.module_utils import values
from ansible_collections.toolhive.k8s.plugins.module_utils.specs import load_playbook_spec, load_role_spec

# Read with every spec: the rules' own knobs.
ALWAYS = ("toolhive_replica_limit",)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        playbook, role = self._task.args.get("playbook"), self._task.args.get("role")
        if bool(playbook) == bool(role):
            raise AnsibleActionFail("toolhive.k8s.validate_variables: give exactly one of playbook or role")
        try:
            spec, options = load_playbook_spec(playbook) if playbook else ({}, load_role_spec(role))
        except (OSError, ValueError, KeyError) as exc:
            raise AnsibleActionFail("toolhive.k8s.validate_variables: %s" % exc)
        names = [n for n in list(options) + list(ALWAYS) if n in task_vars]
        # Templated as Ansible would for a task; untrusted text (extra vars) stays text.
        given = self._templar.template({n: task_vars[n] for n in names})
        # The value rules first, on the values as YAML typed them (before any conversion).
        problems = values.check_variables(given)
        checked = ArgumentSpecValidator(options).validate(
            {n: v for n, v in given.items() if n in options}, validate_role_argument_spec=True)
        bad = {p.split(" = ")[0].split("[")[0] for p in problems}
        problems += [str(error) for error in checked.errors
                     if not any(name in str(error) for name in bad)]  # a value already refused, said once
        result.update(changed=False, validated=sorted(given))
        # A playbook's own defaults, for the variables nobody set: as facts, not play vars, so that inventory
        # host and group variables (one namespace per cluster, say) are not shadowed. Roles have defaults/.
        result["ansible_facts"] = {name: option["default"] for name, option in (spec.get("options") or {}).items()
                                   if "default" in option and name not in task_vars}
        if problems:
            result.update(failed=True, problems=problems,
                          msg="%d variable(s) refused; nothing was read from or written to the cluster:\n- %s"
                              % (len(problems), "\n- ".join(problems)))
        return result
