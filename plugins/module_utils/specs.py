# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The variables a playbook or a role of this collection accepts, in argument-spec format (controller side)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path):
    import yaml

    with open(path) as spec_file:
        return yaml.safe_load(spec_file)


def load_role_spec(role, entry_point="main", root=COLLECTION_ROOT):
    specs = _load(os.path.join(root, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]
    if entry_point not in specs:
        raise ValueError("role %s has no entry point %r" % (role, entry_point))
    return specs[entry_point].get("options") or {}


def load_playbook_spec(name, root=COLLECTION_ROOT):
    """Return (spec, options): the spec file as written and every option the playbook accepts."""
    path = os.path.join(root, "playbooks", "specs", name + ".yml")
    if not os.path.isfile(path):
        raise ValueError("no argument spec for playbook %r (expected %s)" % (name, path))
    spec = _load(path)
    options = {}
    for role in spec.get("roles", []):
        options.update(load_role_spec(role, root=root))
    options.update(spec.get("options") or {})
    return spec, options
