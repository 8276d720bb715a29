# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of toolhive.k8s.drain_node: the module, with kubernetes.core's connection defaults too."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.toolhive.k8s.plugins.plugin_utils.cluster_action import ClusterAction


class ActionModule(ClusterAction):
    """See plugins/plugin_utils/cluster_action.py."""
