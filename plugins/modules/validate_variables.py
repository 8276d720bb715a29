#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: validate_variables
short_description: Check a job's variables before it reads or writes anything
version_added: 0.2.0
description:
  - Runs on the controller (an action plugin; nothing is sent to the cluster).
  - Checks the variables a playbook or role of this collection accepts against its argument spec (types, choices,
    required options) and against the value rules that keep every value data (Kubernetes names and namespaces,
    image references on one line, ports, quantities, labels, Secret names and keys, C(keyPrefix), replica counts up
    to C(toolhive_replica_limit), percentages of 1 or more).
  - Values that YAML typed differently from what the user meant (C(no), C(017), C(0x1f), C(null)) are named as such.
  - Fails with one message listing every bad value, each naming the variable, the value (shortened, control
    characters escaped) and the rule.
  - For a playbook, sets the defaults of its own options (C(playbooks/specs/NAME.yml)) that no variable gives, as
    facts, so the playbook needs no play C(vars) that would shadow inventory host and group variables.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
options:
  playbook:
    description: Name of one of the collection's playbooks (its C(playbooks/specs/NAME.yml) and the roles it lists).
    type: str
  role:
    description: Name of one of the collection's roles (its C(meta/argument_specs.yml), entry point C(main)).
    type: str
attributes:
  check_mode:
    support: full
    description: Reads variables only.
  diff_mode:
    support: none
    description: Nothing to show.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
notes:
  - The variables are read from the task's variables; C(toolhive_replica_limit) (default 20) raises the replica bound.
"""

EXAMPLES = r"""
- name: Check the job's variables before anything else
  toolhive.k8s.validate_variables:
    playbook: deploy

- name: Check the redis role's variables
  toolhive.k8s.validate_variables:
    role: redis
"""

RETURN = r"""
validated:
  description: The variables that were given and checked.
  returned: always
  type: list
  elements: str
  sample: [toolhive_namespace, mcpserver_servers]
problems:
  description: One sentence per refused value.
  returned: failure
  type: list
  elements: str
  sample: ["mcpserver_servers[0].name = 'Fetch' must be a DNS-1123 label ..."]
"""
