# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One mapping of Kubernetes API failures to messages that say what to do."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

HINTS = {
    401: "the API server did not accept the credentials: check `api_key` / the kubeconfig user "
         "(an expired token or a certificate from another cluster)",
    403: "the credentials are valid but not allowed to do this: grant the verb on this resource to the "
         "user or service account (a Role with get/list/patch on the ToolHive resources and their workloads)",
    404: "not found: check the name, the namespace and that the ToolHive CRDs are installed",
    409: "conflict: someone else changed the object at the same time; run the task again",
    422: "the API server rejected the object as invalid: fix the field it names",
}


class Refused(Exception):
    """What a module will not do, and why: raised by its helpers, failed by client.run_module with FIELDS as the
    failure's return values (helpers raise; only the top level fails)."""

    def __init__(self, message, **fields):
        super(Refused, self).__init__(message)
        self.fields = fields


class K8sError(Exception):
    """An API call that failed, with a message a person can act on."""

    def __init__(self, message, status=None, reason=None, details=None):
        super(K8sError, self).__init__(message)
        self.status = status
        self.reason = reason
        self.details = details or {}

    @classmethod
    def from_response(cls, status, payload, method, path):
        try:
            body = json.loads(payload)
        except ValueError:
            body = {"message": payload.strip()[:500]}
        server_message = body.get("message") or payload[:500]
        hint = HINTS.get(status)
        if status >= 500:
            hint = "the API server failed (HTTP %d); try again, and check its health" % status
        message = "%s %s: HTTP %d: %s" % (method, path, status, server_message)
        if hint:
            message += " — " + hint
        return cls(message, status=status, reason=body.get("reason"), details=body.get("details"))


# OpenSSL's reasons when a chain fails only strict verification (X509_V_FLAG_X509_STRICT), in lower case.
STRICT_X509_REASONS = ("ca cert does not include key usage extension", "basic constraints of ca cert not marked critical",
                       "missing authority key identifier", "missing subject key identifier",
                       "authority key identifier marked critical", "subject key identifier marked critical")


def connection_error(connection, exc):
    """Timeouts, refused connections and TLS failures, named as such."""
    text = str(exc)
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        what = "the request timed out"
    elif "refused" in text.lower():
        what = "the connection was refused (is the API server running and `host` right?)"
    elif any(reason in text.lower() for reason in STRICT_X509_REASONS):
        what = ("TLS verification refused the cluster's certificates: they lack extensions strict X.509 "
                "verification requires (Python 3.13 and newer verify strictly). Fix: reissue the cluster's CA with "
                "basicConstraints critical CA:TRUE, keyUsage keyCertSign and a subjectKeyIdentifier, and its "
                "certificates with an authorityKeyIdentifier, as kubeadm, kind and managed clusters issue them; "
                "until then run Ansible on Python 3.12")
    elif "certificate" in text.lower() or "ssl" in text.lower():
        what = "TLS failed (set `ca_cert` to the cluster's CA, or `validate_certs: false` for a test cluster)"
    else:
        what = "the API server could not be reached"
    return K8sError("cannot reach the Kubernetes API server at %s (from %s): %s: %s"
                    % (connection.host, connection.source, what, text))
