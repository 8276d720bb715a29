# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small JSON client for the Kubernetes API.

Importing the kubernetes Python client costs about a second (it loads every
model); a module that patches one object does not need that. This client speaks
JSON over urllib3 (a dependency of the kubernetes client) and understands the
common kubeconfig entries itself: tokens, client certificates, CA bundles,
insecure-skip-tls-verify, proxy-url. Only exotic authentication (exec plugins,
auth-provider) falls back to the kubernetes client, loaded on demand.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json
import os
import ssl
import tempfile
import threading
import time
from urllib.parse import urlencode

from ansible.module_utils.basic import env_fallback

from ansible_collections.toolhive.k8s.plugins.module_utils import values
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError, Refused, connection_error

# Every write of the collection carries this field manager, the one its roles apply with.
FIELD_MANAGER = "toolhive.k8s"
IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Same option names and K8S_AUTH_* variables as kubernetes.core (and AWX's
# Kubernetes credential): users learn nothing new.
AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="raw", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    username=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_USERNAME"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_PASSWORD"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False, fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY"])),
    request_timeout=dict(type="float", default=30.0),
)

CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


class Connection:
    """Where the API server is and how to authenticate to it."""

    def __init__(self, host, headers=None, ca_file=None, ca_data=None, cert_file=None, key_file=None,
                 verify=True, proxy=None, source=""):
        self.host = host.rstrip("/")
        self.headers = headers or {}
        self.ca_file = ca_file
        self.ca_data = ca_data
        self.cert_file = cert_file
        self.key_file = key_file
        self.verify = verify
        self.proxy = proxy
        self.source = source
        self.temp_files = []  # kubeconfig *-data written out for ssl; removed once loaded


def _data_file(data):
    """A private temp file holding base64-decoded kubeconfig data (ssl wants files)."""
    handle = tempfile.NamedTemporaryFile(prefix="toolhive-k8s-", delete=False)
    with handle:
        handle.write(base64.b64decode(data))
    os.chmod(handle.name, 0o600)
    return handle.name


def _relative(path, base_dir):
    if path and not os.path.isabs(path):
        return os.path.join(base_dir, path)
    return path


def _named(entries, name, what, path):
    for entry in entries or []:
        if entry.get("name") == name:
            return entry.get(what) or {}
    raise K8sError("kubeconfig %s has no %s named %r" % (path, what, name))


# Fields of a kubeconfig that name files, relative to the file that holds them (client-go's ResolvePaths).
_FILE_FIELDS = {"clusters": ("cluster", ("certificate-authority",)),
                "users": ("user", ("client-certificate", "client-key", "tokenFile"))}


def _absolute_paths(config, base_dir):
    """CONFIG with every file it names made absolute against BASE_DIR (the directory of the file it came from)."""
    for section, (what, fields) in _FILE_FIELDS.items():
        for entry in config.get(section) or []:
            body = entry.get(what) or {}
            for field in fields:
                if body.get(field):
                    body[field] = _relative(body[field], base_dir)
            command = (body.get("exec") or {}).get("command")
            if what == "user" and command and os.sep in command:  # a bare name is looked up in PATH
                body["exec"]["command"] = _relative(command, base_dir)
    return config


def _read_kubeconfig(path):
    import yaml

    with open(path) as handle:
        return _absolute_paths(yaml.safe_load(handle) or {}, os.path.dirname(os.path.abspath(path)))


def merge_kubeconfigs(configs):
    """One kubeconfig from several, as kubectl merges KUBECONFIG's files: the first file to name a cluster, user
    or context wins, and so does the first current-context."""
    merged = {"clusters": [], "users": [], "contexts": []}
    for config in configs:
        for section in ("clusters", "users", "contexts"):
            known = {entry.get("name") for entry in merged[section]}
            merged[section].extend(entry for entry in config.get(section) or [] if entry.get("name") not in known)
        if not merged.get("current-context") and config.get("current-context"):
            merged["current-context"] = config["current-context"]
    return merged


def load_kubeconfig(kubeconfig):
    """(config, where it came from) for the kubeconfig option: a dict, a file, or (unset) every file of KUBECONFIG
    merged as kubectl merges them, else ~/.kube/config; (None, None) when there is none."""
    if isinstance(kubeconfig, dict):
        return _absolute_paths(copy.deepcopy(kubeconfig), os.getcwd()), "<dict>"
    if kubeconfig:
        paths = [kubeconfig] if isinstance(kubeconfig, str) else list(kubeconfig)
        for path in paths:
            if not os.path.exists(path):
                raise K8sError("kubeconfig %s does not exist: set `kubeconfig` (or K8S_AUTH_KUBECONFIG) to a "
                               "readable file" % path)
    elif os.environ.get("KUBECONFIG"):
        # kubectl skips the files of KUBECONFIG that do not exist; it fails only when none does.
        listed = [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
        paths = [p for p in listed if os.path.exists(p)]
        if not paths:
            raise K8sError("no file of KUBECONFIG exists (%s): set KUBECONFIG or `kubeconfig` to a readable file"
                           % os.environ["KUBECONFIG"])
    else:
        default = os.path.expanduser("~/.kube/config")
        paths = [default] if os.path.exists(default) else []
    if not paths:
        return None, None
    return merge_kubeconfigs([_read_kubeconfig(path) for path in paths]), os.pathsep.join(paths)


def connection_from_kubeconfig(kubeconfig, context=None):
    """The connection a kubeconfig (dict, path, or None for KUBECONFIG / ~/.kube/config) describes."""
    config, path = load_kubeconfig(kubeconfig)
    if config is None:
        raise K8sError("no kubeconfig found: set `kubeconfig` (or K8S_AUTH_KUBECONFIG or KUBECONFIG)")
    return connection_from_config(config, path, context)


def connection_from_config(config, path, context=None):
    """The connection of CONTEXT (default: the current one) in a loaded kubeconfig; PATH names it in errors."""
    context_name = context or config.get("current-context")
    if not context_name:
        raise K8sError("kubeconfig %s has no current-context: set `context`" % path)
    ctx = _named(config.get("contexts"), context_name, "context", path)
    cluster = _named(config.get("clusters"), ctx.get("cluster"), "cluster", path)
    user = _named(config.get("users"), ctx.get("user"), "user", path) if ctx.get("user") else {}

    if "exec" in user or "auth-provider" in user:
        return _connection_from_kubernetes_client(config, context_name, path)

    headers = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(user["tokenFile"]) as handle:
            token = handle.read().strip()
    if token:
        headers["Authorization"] = "Bearer " + token
    elif user.get("username"):
        basic = "%s:%s" % (user["username"], user.get("password", ""))
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()

    temp_files = []
    cert_file = user.get("client-certificate")
    if user.get("client-certificate-data"):
        cert_file = _data_file(user["client-certificate-data"])
        temp_files.append(cert_file)
    key_file = user.get("client-key")
    if user.get("client-key-data"):
        key_file = _data_file(user["client-key-data"])
        temp_files.append(key_file)
    ca_data = None
    if cluster.get("certificate-authority-data"):
        ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    connection = Connection(
        host=cluster["server"], headers=headers,
        ca_file=cluster.get("certificate-authority"), ca_data=ca_data,
        cert_file=cert_file, key_file=key_file,
        verify=not cluster.get("insecure-skip-tls-verify", False),
        proxy=cluster.get("proxy-url"), source="kubeconfig %s (context %s)" % (path, context_name))
    connection.temp_files = temp_files
    return connection


def _connection_from_kubernetes_client(config, context, path):
    """Exec plugins and auth-providers: let the kubernetes client work out the credentials from the (merged)
    kubeconfig, whatever it came from."""
    from kubernetes import config as kube_config  # slow import, only for exotic auth
    from kubernetes.client import Configuration

    configuration = Configuration()
    kube_config.load_kube_config_from_dict(config_dict=config, context=context, client_configuration=configuration)
    headers = {}
    # kubernetes >= 29 keeps the token under "BearerToken" (with its "Bearer " prefix); older ones under
    # "authorization".
    api_key = configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization")
    if api_key:
        headers["Authorization"] = api_key if " " in api_key else "Bearer " + api_key
    return Connection(host=configuration.host, headers=headers, ca_file=configuration.ssl_ca_cert,
                      cert_file=configuration.cert_file, key_file=configuration.key_file,
                      verify=configuration.verify_ssl, proxy=configuration.proxy,
                      source="kubeconfig %s (context %s)" % (path, context))


def _in_cluster():
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token_file = os.path.join(IN_CLUSTER_DIR, "token")
    if not (host and port and os.path.exists(token_file)):
        return None
    with open(token_file) as handle:
        token = handle.read().strip()
    if ":" in host:
        host = "[%s]" % host
    return Connection(host="https://%s:%s" % (host, port), headers={"Authorization": "Bearer " + token},
                      ca_file=os.path.join(IN_CLUSTER_DIR, "ca.crt"), source="in-cluster service account")


def resolve_connection(params):
    """The connection the options describe, in kubernetes.core's order of precedence:
    explicit host/credentials, then a kubeconfig, then the in-cluster service account."""
    connection = None
    if params.get("host") and not params.get("kubeconfig"):
        connection = Connection(host=params["host"], source="host %s" % params["host"])
    else:
        config, path = load_kubeconfig(params.get("kubeconfig"))
        connection = connection_from_config(config, path, params.get("context")) if config is not None else _in_cluster()
    if connection is None:
        raise K8sError("no Kubernetes cluster configured: set `kubeconfig` or `host` and `api_key` "
                       "(or K8S_AUTH_KUBECONFIG / K8S_AUTH_HOST and K8S_AUTH_API_KEY), or run in a pod "
                       "with a service account")
    # Explicit options override what the kubeconfig says.
    if params.get("host"):
        connection.host = params["host"].rstrip("/")
    if params.get("api_key"):
        key = params["api_key"]
        connection.headers["Authorization"] = key if key.lower().startswith("bearer ") else "Bearer " + key
    elif params.get("username"):
        basic = "%s:%s" % (params["username"], params.get("password") or "")
        connection.headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    if params.get("ca_cert"):
        connection.ca_file, connection.ca_data = params["ca_cert"], None
    if params.get("client_cert"):
        connection.cert_file = params["client_cert"]
    if params.get("client_key"):
        connection.key_file = params["client_key"]
    if params.get("validate_certs") is not None:
        connection.verify = params["validate_certs"]
    if params.get("proxy"):
        connection.proxy = params["proxy"]
    return connection


# urllib3 calls set_alpn_protocols() on the shared SSLContext for every new connection; CPython frees the old
# protocol list there while another thread's SSL_new() may be copying it (python/cpython#141012). The garbage
# ALPN extension that results makes the API server answer "tlsv1 alert decode error" now and then. New
# connections (not requests) are therefore made one at a time: a handful per run, a few milliseconds each.
_TLS_SETUP = threading.Lock()


def _serialized_tls_pool(urllib3):
    """An HTTPS connection pool whose new connections do their TLS setup one at a time (see _TLS_SETUP)."""
    class SerializedTLSConnection(urllib3.connection.HTTPSConnection):
        def connect(self):
            with _TLS_SETUP:
                super(SerializedTLSConnection, self).connect()

    class SerializedTLSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = SerializedTLSConnection

    return SerializedTLSPool


class K8sClient:
    """JSON requests to the API server, with API errors turned into K8sError."""

    def __init__(self, connection, timeout=30.0):
        import urllib3

        self.connection = connection
        self.timeout = timeout
        self._urllib3 = urllib3
        kwargs = dict(ssl_context=self._ssl_context(), timeout=urllib3.Timeout(total=timeout),
                      retries=False, maxsize=8)  # toolhive.k8s.apply sends up to 8 requests at once
        if not connection.verify:
            kwargs.update(cert_reqs="CERT_NONE", assert_hostname=False)
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if connection.proxy:
            self.pool = urllib3.ProxyManager(connection.proxy, **kwargs)
        else:
            self.pool = urllib3.PoolManager(**kwargs)
        self.pool.pool_classes_by_scheme = dict(self.pool.pool_classes_by_scheme, https=_serialized_tls_pool(urllib3))

    def _ssl_context(self):
        conn = self.connection
        context = ssl.create_default_context()
        if not conn.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif conn.ca_file or conn.ca_data:
            context = ssl.create_default_context(cafile=conn.ca_file, cadata=conn.ca_data)
        try:
            if conn.cert_file:
                context.load_cert_chain(conn.cert_file, conn.key_file)
        finally:
            for path in conn.temp_files:  # key material stays on disk no longer than needed
                os.remove(path)
            conn.temp_files = []
        return context

    def request(self, method, path, body=None, params=None, content_type="application/json"):
        url = self.connection.host + path
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        headers = dict(self.connection.headers, Accept="application/json")
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        try:
            response = self.pool.request(method, url, body=data, headers=headers)
        except self._urllib3.exceptions.HTTPError as exc:
            raise connection_error(self.connection, exc)
        payload = response.data.decode("utf-8") if response.data else ""
        if response.status >= 400:
            raise K8sError.from_response(response.status, payload, method, path)
        return json.loads(payload) if payload else {}

    def get(self, path, **params):
        return self.request("GET", path, params=params or None)

    def watch(self, path, resource_version, seconds, **params):
        """The events of a collection after resource_version, for at most `seconds`: yields (type, object).

        A watch answers as soon as something changes, where a poll would find it up to a period late; the
        server ends it after timeoutSeconds, the read timeout only guards against a silent connection."""
        params = dict(params, watch="1", resourceVersion=resource_version, timeoutSeconds=str(max(1, int(seconds))),
                      allowWatchBookmarks="false")
        url = self.connection.host + path + "?" + urlencode(params)
        headers = dict(self.connection.headers, Accept="application/json")
        try:
            response = self.pool.request("GET", url, headers=headers, preload_content=False,
                                         timeout=self._urllib3.Timeout(connect=self.timeout, read=seconds + 10))
        except self._urllib3.exceptions.HTTPError as exc:
            raise connection_error(self.connection, exc)
        try:
            if response.status >= 400:
                raise K8sError.from_response(response.status, response.read().decode("utf-8"), "GET", path)
            pending = b""
            for chunk in response.stream(65536):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event.get("type"), event.get("object") or {}
        except self._urllib3.exceptions.HTTPError as exc:
            raise connection_error(self.connection, exc)
        finally:
            response.release_conn()

    def get_or_none(self, path, **params):
        try:
            return self.get(path, **params)
        except K8sError as exc:
            if exc.status == 404:
                return None
            raise

    # Every write names the collection's field manager, so managedFields say who changed what.
    def create(self, path, body, dry_run=False, field_manager=FIELD_MANAGER):
        return self.request("POST", path, body, params={"fieldManager": field_manager,
                                                        "dryRun": "All" if dry_run else None})

    def patch(self, path, body, patch_type="merge", dry_run=False, field_manager=FIELD_MANAGER):
        params = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None}
        return self.request("PATCH", path, body, params=params, content_type=CONTENT_TYPES[patch_type])

    def delete(self, path, dry_run=False, preconditions=None):
        """preconditions {uid, resourceVersion}: the API server deletes only that very object (else 409). What the
        object owns goes too (a Job's pods: the API's default for a Job orphans them)."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if preconditions:
            body["preconditions"] = preconditions
        return self.request("DELETE", path, body, params={"dryRun": "All"} if dry_run else None)

    def replace(self, path, body, dry_run=False, field_manager=FIELD_MANAGER):
        """PUT: with metadata.resourceVersion set, a 409 if anyone changed the object since it was read."""
        params = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None}
        return self.request("PUT", path, body, params=params)


class ReadCache:
    """Reads through a K8sClient, each path and query asked once: a report over many resources lists the
    namespace's workloads and HPAs once, not once per resource. For reads only, over one short moment."""

    def __init__(self, client):
        self.client = client
        self._answers = {}

    def get(self, path, **params):
        return self._answer(self.client.get, path, params)

    def get_or_none(self, path, **params):
        return self._answer(self.client.get_or_none, path, params)

    def _answer(self, read, path, params):
        key = (read.__name__, path, tuple(sorted(params.items())))
        if key not in self._answers:
            self._answers[key] = read(path, **params)
        return self._answers[key]


def retry_on_conflict(action, attempts=5):
    """Run action() again when its write meets HTTP 409: someone changed the object between its read and its write
    (or created the same object). Each attempt reads afresh, so the checks see what is there now."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except K8sError as exc:
            if exc.status != 409 or attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


def client_from_module(module):
    """A K8sClient for an AnsibleModule whose argument spec includes AUTH_ARG_SPEC."""
    try:
        connection = resolve_connection(module.params)
        return K8sClient(connection, timeout=module.params.get("request_timeout") or 30.0)
    except K8sError as exc:
        module.fail_json(msg=str(exc))
    except (IOError, OSError, ssl.SSLError, ValueError) as exc:
        module.fail_json(msg="cannot set up the connection to Kubernetes: %s" % exc)


# The ToolHive server a module works on (doc fragment toolhive.k8s.resource).
RESOURCE_ARG_SPEC = dict(
    kind=dict(type="str", required=True, choices=["VirtualMCPServer", "MCPServer", "MCPRemoteProxy"]),
    namespace=dict(type="str", required=True),
    api_version=dict(type="str", default="v1beta1", choices=["v1beta1", "v1alpha1"]),
)


def run_module(argument_spec, run, **kwargs):
    """Build the module with the connection options, run it, turn API errors into failures."""
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=dict(AUTH_ARG_SPEC, **argument_spec), supports_check_mode=True, **kwargs)
    problems = values.check_params(module.params)
    if problems:  # before the client exists: a bad name never reaches a request
        module.fail_json(msg="%d option(s) refused before any request:\n- %s" % (len(problems), "\n- ".join(problems)),
                         problems=problems)
    client = client_from_module(module)
    try:
        module.exit_json(**run(module, client))
    except Refused as exc:
        module.fail_json(msg=str(exc), **exc.fields)
    except K8sError as exc:
        module.fail_json(msg=str(exc), status=exc.status)
    except ValueError as exc:  # a path builder refused a name (values.path_segment)
        module.fail_json(msg=str(exc))
