# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: disruption_budgets
short_description: The PodDisruptionBudgets of a ToolHive server's workloads
version_added: 0.1.0
description:
  - Returns one PodDisruptionBudget per workload of one MCPServer (its proxy and its backend), VirtualMCPServer or
    MCPRemoteProxy, named C(NAME-ROLE) (for example C(gateway-vmcp), C(fetch-proxy), C(fetch-backend)).
  - Each lets one pod go at a time (C(maxUnavailable) 1, so a single replica never blocks a node drain), and lets a
    pod that is not ready always go (C(unhealthyPodEvictionPolicy) C(AlwaysAllow)).
  - Each carries the labels C(app.kubernetes.io/managed-by=toolhive.k8s), C(app.kubernetes.io/component=disruption-budget)
    and C(app.kubernetes.io/instance=NAME), besides the given ones.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
positional: name, namespace
options:
  _input:
    description: C(MCPServer), C(VirtualMCPServer) or C(MCPRemoteProxy).
    type: str
    required: true
  name:
    description: The server's name.
    type: str
    required: true
  namespace:
    description: The server's namespace.
    type: str
    required: true
  labels:
    description: More labels of the budgets.
    type: dict
"""

EXAMPLES = r"""
budgets: "{{ 'VirtualMCPServer' | toolhive.k8s.disruption_budgets('gateway', 'toolhive') }}"
"""

RETURN = r"""
_value:
  description: The PodDisruptionBudget manifests.
  type: list
  elements: dict
"""

from ansible_collections.toolhive.k8s.plugins.module_utils.availability import disruption_budgets as budgets_of


def disruption_budgets(kind, name, namespace, labels=None):
    return budgets_of(kind, name, namespace, labels)


class FilterModule(object):
    def filters(self):
        return {"disruption_budgets": disruption_budgets}
