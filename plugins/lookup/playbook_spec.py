# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: playbook_spec
short_description: The argument spec of one of this collection's playbooks
version_added: 0.1.0
description:
  - Reads C(playbooks/specs/NAME.yml) of this collection, the variables a playbook accepts in argument-spec format,
    and adds the options of the roles it lists under C(roles) (their C(meta/argument_specs.yml), entry point C(main)).
  - Made for M(ansible.builtin.validate_argument_spec) as a playbook's first task, so a job fails in its first second
    on a bad variable, and for the test that keeps the AWX surveys in step with the playbooks.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
options:
  _terms:
    description: Name of the playbook, without C(.yml).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Check the job's variables before anything else
  ansible.builtin.validate_argument_spec:
    argument_spec: "{{ lookup('toolhive.k8s.playbook_spec', 'scale') }}"
"""

RETURN = r"""
_raw:
  description: The options (name to argument spec) the playbook accepts.
  type: list
  elements: dict
"""

import os

import yaml

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path):
    with open(path) as spec_file:
        return yaml.safe_load(spec_file)


def load_playbook_spec(name, root=COLLECTION_ROOT):
    """Return (spec, options): the spec file as written and every option the playbook accepts."""
    path = os.path.join(root, "playbooks", "specs", name + ".yml")
    if not os.path.isfile(path):
        raise ValueError("no argument spec for playbook %r (expected %s)" % (name, path))
    spec = _load(path)
    options = {}
    for role in spec.get("roles", []):
        role_spec = _load(os.path.join(root, "roles", role, "meta", "argument_specs.yml"))
        options.update(role_spec["argument_specs"]["main"]["options"])
    options.update(spec.get("options") or {})
    return spec, options


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            return [load_playbook_spec(term)[1] for term in terms]
        except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
            raise AnsibleLookupError("toolhive.k8s.playbook_spec: %s" % exc)
