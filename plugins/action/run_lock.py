# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of toolhive.k8s.run_lock: the module, with kubernetes.core's connection defaults too, told
where this run's ansible-playbook process is (a later run on this controller then knows when that process is gone)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible_collections.toolhive.k8s.plugins.plugin_utils.cluster_action import ClusterAction


class ActionModule(ClusterAction):
    """See plugins/plugin_utils/cluster_action.py."""

    def run(self, tmp=None, task_vars=None):
        # A task runs in a worker forked from ansible-playbook's own process: its parent is the run.
        self._task.args = dict(self._task.args, controller={"host": socket.gethostname(), "pid": os.getppid()})
        return super(ActionModule, self).run(tmp, task_vars)
