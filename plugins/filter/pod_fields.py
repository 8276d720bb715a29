# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pod_fields
short_description: The spec fields that set a ToolHive server's pods
version_added: 0.1.0
description:
  - Returns the spec fields of one MCPServer, VirtualMCPServer or MCPRemoteProxy that set its pods, as a dict of
    field to value - C(podTemplateSpec).
  - C(podTemplateSpec) reaches the gateway's pods (container C(vmcp)), a remote proxy's pods (container
    C(toolhive)) and an MCPServer's backend pods (container C(mcp)). It carries the container's resources, the pods'
    annotations, a preStop sleep of O(drain_seconds) with a grace period covering it and the process's own shutdown,
    a topology spread over nodes (C(ScheduleAnyway), counted per revision), and for an MCPServer's backend, whose
    container has no readiness probe of its own, a TCP readiness probe on O(listen_port).
  - The operator writes an MCPServer proxy's pod template whole; its pods get none of these (their drain comes from
    the C(operator) role's MutatingAdmissionPolicy).
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
positional: kind, name
options:
  _input:
    description: The resources of the container C(podTemplateSpec) reaches, or none.
    type: raw
    required: true
  kind:
    description: C(MCPServer), C(VirtualMCPServer) or C(MCPRemoteProxy).
    type: str
    required: true
  name:
    description: The server's name.
    type: str
    required: true
  annotations:
    description: Annotations of the pods C(podTemplateSpec) reaches.
    type: dict
  drain_seconds:
    description: Seconds a stopping pod keeps serving after it leaves its Service (a preStop sleep); 0 for none.
    type: int
    default: 0
  spread:
    description: Spread each workload's pods over nodes.
    type: bool
    default: false
  listen_port:
    description:
      - The port an MCPServer's backend listens on (C(mcpPort)); its pods are Ready only once they accept connections
        on it, checked every second. None for no probe (a stdio backend listens on no port).
      - The gateway's and the proxies' pods have the operator's own probes, and get none.
    type: int
"""

EXAMPLES = r"""
spec_fields: "{{ item.resources | default(none) | toolhive.k8s.pod_fields('VirtualMCPServer', item.name,
                 drain_seconds=10, spread=true) }}"
"""

RETURN = r"""
_value:
  description: Spec field to value; empty when nothing is set.
  type: dict
"""

from ansible_collections.toolhive.k8s.plugins.module_utils.availability import pod_fields as fields_of


def pod_fields(resources, kind, name, annotations=None, drain_seconds=0, spread=False, listen_port=None):
    return fields_of(kind, name, resources=resources or None, annotations=annotations or None,
                     drain_seconds=int(drain_seconds), spread_pods=bool(spread),
                     listen_port=int(listen_port) if listen_port else None)


class FilterModule(object):
    def filters(self):
        return {"pod_fields": pod_fields}
