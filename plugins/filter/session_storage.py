# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: session_storage
short_description: The sessionStorage block of a ToolHive server
version_added: 0.1.0
description:
  - Returns the C(sessionStorage) block for one MCPServer, VirtualMCPServer or MCPRemoteProxy.
  - An explicit block (the server's C(session_storage)) wins; C(false) means none. Otherwise, when the redis role ran
    (its C(redis_connection) fact), Redis with a C(keyPrefix) of its own per server, C(thv:NAMESPACE:KIND:NAME:),
    so several servers can share one Redis. When that Redis serves TLS (C(redis_connection.tls_ca_secret)), the
    block has C(tls.caCertSecretRef) to its CA (a field of ToolHive v0.55.1 and later; C(toolhive.k8s.preflight)
    refuses it on older CRDs).
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
positional: redis, kind, namespace
options:
  _input:
    description: The server's own C(session_storage) (a dict, C(false), or undefined/none).
    type: raw
    required: true
  redis:
    description: The redis role's C(redis_connection) fact, or none.
    type: dict
  kind:
    description: C(mcp), C(vmcp) or C(remote) (an MCPRemoteProxy), part of the key prefix.
    type: str
  namespace:
    description: The server's namespace.
    type: str
  name:
    description: The server's name.
    type: str
"""

EXAMPLES = r"""
storage: "{{ item.session_storage | default(none) | toolhive.k8s.session_storage(redis_connection | default(none),
            'mcp', namespace, name=item.name) }}"
"""

RETURN = r"""
_value:
  description: The sessionStorage block, or none when the server has no session storage.
  type: dict
"""


def session_storage(explicit, redis=None, kind="mcp", namespace="", name=""):
    if explicit is False:
        return None
    if isinstance(explicit, dict) and explicit:
        return explicit
    if not redis or redis.get("mode", "standalone") != "standalone":
        return None  # sessionStorage speaks to a standalone Redis only
    storage = {
        "provider": "redis",
        "address": redis["address"],
        "db": 0,
        "keyPrefix": "thv:%s:%s:%s:" % (namespace, kind, name),
        "passwordRef": {"name": redis["password_secret"], "key": redis["password_key"]},
    }
    if redis.get("tls_ca_secret"):
        storage["tls"] = {"caCertSecretRef": {"name": redis["tls_ca_secret"], "key": "ca.crt"}}
    return storage


class FilterModule(object):
    def filters(self):
        return {"session_storage": session_storage}
