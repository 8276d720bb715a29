# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs on the controller (no module to start): a job's variables, checked before anything else."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

try:  # ansible-core 2.21 and newer: variables an action sets are host variables of a layer it names
    from ansible.plugins.action import VariableLayer
except ImportError:
    VariableLayer = None

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
        # A playbook's own defaults, for the variables nobody set: host variables, not play vars, so that
        # inventory host and group variables (one namespace per cluster, say) are not shadowed. Roles have defaults/.
        defaults = {name: option["default"] for name, option in (spec.get("options") or {}).items()
                    if "default" in option and name not in task_vars}
        self._set_host_variables(result, defaults)
        if problems:
            result.update(failed=True, problems=problems,
                          msg="%d variable(s) refused; nothing was read from or written to the cluster:\n- %s"
                              % (len(problems), "\n- ".join(problems)))
        return result

    def _set_host_variables(self, result, variables):
        """What set_fact does: variables of this host for the rest of the play, neither cached nor gathered facts
        (ansible-core 2.20 deprecates reading facts as top-level variables, and 2.24 stops injecting them)."""
        if VariableLayer is None:  # before 2.21: an action's facts were the only way, and were injected
            result["ansible_facts"] = variables
            return
        self.register_host_variables({}, VariableLayer.CACHEABLE_FACT)  # no facts from this action's result
        self.register_host_variables(variables, VariableLayer.EPHEMERAL_FACT)
