# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The connection options of every module, named as in kubernetes.core.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig as a dictionary.
      - Without it, and without O(host), the E(KUBECONFIG) variable, then C(~/.kube/config), then the
        in-cluster service account are tried, in that order.
      - Can also be set with E(K8S_AUTH_KUBECONFIG).
    type: raw
  context:
    description:
      - The kubeconfig context to use; the current context by default.
      - Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the API server, for example C(https://api.example.com:6443).
      - With O(api_key) (or client certificates) and no O(kubeconfig), nothing else is read.
      - Can also be set with E(K8S_AUTH_HOST), as AWX's Kubernetes bearer-token credential does.
    type: str
  api_key:
    description:
      - Bearer token for the API server.
      - Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - User name for basic authentication. Can also be set with E(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for basic authentication. Can also be set with E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's certificate.
      - Can also be set with E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate that signed the API server's certificate.
      - Can also be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate. Can also be set with E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the client certificate's key. Can also be set with E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - HTTP(S) proxy URL for the connection to the API server. Can also be set with E(K8S_AUTH_PROXY).
    type: str
  request_timeout:
    description:
      - Seconds to wait for one API request.
    type: float
    default: 30.0
notes:
  - Connection options can be set for all modules of this collection at once with
    C(module_defaults) and the action group C(group/toolhive.k8s.k8s).
requirements:
  - python >= 3.9
  - urllib3 and PyYAML (both come with the C(kubernetes) Python package)
"""
