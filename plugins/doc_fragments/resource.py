# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Which ToolHive server a module works on.
    DOCUMENTATION = r"""
options:
  kind:
    description: Kind of the ToolHive resource.
    type: str
    required: true
    choices: [VirtualMCPServer, MCPServer, MCPRemoteProxy]
  namespace:
    description: Namespace of the resource.
    type: str
    required: true
  api_version:
    description: Version of the ToolHive API (C(v1alpha1) for operators older than v0.23).
    type: str
    default: v1beta1
    choices: [v1beta1, v1alpha1]
"""

    # The bound on the replica counts a task sets (scale, autoscale).
    REPLICA_LIMIT = r"""
options:
  replica_limit:
    description:
      - Upper bound for any replica count this task sets; a larger one is refused before any request (a typo such as
        C(10000) would otherwise start that many pods). Raise it when you mean it.
    type: int
    default: 20
"""
