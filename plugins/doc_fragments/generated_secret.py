# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The Secret a generating module (password_secret, tls_secret) makes once and deletes only when it made it.
    DOCUMENTATION = r"""
options:
  name:
    description: Name of the Secret.
    type: str
    required: true
  namespace:
    description: Namespace of the Secret.
    type: str
    required: true
  state:
    description: C(present) creates the Secret when missing; C(absent) deletes it if the collection created it.
    type: str
    choices: [present, absent]
    default: present
  labels:
    description: Labels of a created Secret (C(app.kubernetes.io/managed-by=toolhive.k8s) is always added).
    type: dict
    default: {}
"""
