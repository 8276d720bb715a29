# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side apply of manifests, as the field manager toolhive.k8s, with check mode and diffs.

Every object is decided the same way: the live objects are listed once per (kind, namespace); an
object that exists is compared with a server-side dry run of the apply (so defaults and other
managers' fields count, and a no-op writes nothing); only a difference is applied. In check mode
the dry run is the answer. Objects are sent up to WORKERS at a time: the API server answers them
in parallel, and each one is independent of the others (nothing here orders objects of one step).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds
from ansible_collections.toolhive.k8s.plugins.module_utils.client import FIELD_MANAGER
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError
from ansible_collections.toolhive.k8s.plugins.module_utils.waiter import Outage

WORKERS = 8


def ref(manifest):
    meta = manifest.get("metadata") or {}
    return "%s %s/%s" % (manifest.get("kind"), meta.get("namespace"), meta.get("name"))


def collection_path(manifest, namespace=None, name=None):
    """The path of the manifest's collection (in NAMESPACE, else its own), or of the object NAME in it."""
    kind = manifest.get("kind")
    if kind not in kinds.APPLIED:
        raise K8sError("%s: kind %s is not one this collection writes" % (ref(manifest), kind))
    return kinds.path(kind, namespace or manifest["metadata"].get("namespace"), name, api_version=manifest["apiVersion"].split("/")[-1],
                      fields=("metadata.namespace", "metadata.name"))


def object_path(manifest):
    return collection_path(manifest, name=manifest["metadata"].get("name") or "")


def _comparable(obj):
    """What a no-op apply leaves alone: the object without its status and the server's bookkeeping (versions, and
    the field records of every other manager, which a controller writing status changes at any moment; our own
    record stays, without its time). A status written between the list and the dry run is then no change."""
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    meta = obj.get("metadata") or {}
    for field in ("resourceVersion", "generation"):
        meta.pop(field, None)
    ours = [dict(entry) for entry in meta.get("managedFields") or []
            if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
            and not entry.get("subresource")]
    for entry in ours:
        entry.pop("time", None)
    meta["managedFields"] = ours
    return obj


def shown(obj):
    """An object as a diff shows it: no managedFields, no status."""
    if obj is None:
        return {}
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


class Applier:
    def __init__(self, client, check_mode=False):
        self.client, self.check_mode = client, check_mode

    def ensure_namespaces(self, names):
        """Create the namespaces that do not exist; returns those created (or, in check mode, to be created).

        Every namespace is read before any is created: one being deleted refuses the run before anything is
        written, since the API server would refuse every object in it and a wait would only time out."""
        live = {name: self.client.get_or_none(kinds.path("Namespace", name=name, fields=("namespace", "namespace")))
                for name in names}
        terminating = ["%s (deleted at %s)" % (name, obj["metadata"]["deletionTimestamp"])
                       for name, obj in live.items() if obj and obj.get("metadata", {}).get("deletionTimestamp")]
        if terminating:
            raise K8sError("namespace %s is being deleted (Terminating), so nothing can be created in it: wait until "
                           "`kubectl get namespace NAME` answers NotFound, then run again."
                           % ", ".join(terminating))
        created = []
        for name in names:
            if live[name] is not None:
                continue
            if not self.check_mode:
                try:
                    self.client.create(kinds.path("Namespace"), {"apiVersion": "v1", "kind": "Namespace",
                                                                 "metadata": {"name": name}})
                except K8sError as exc:
                    if exc.status != 409:  # created by someone else meanwhile: it exists, as wanted
                        raise
                    continue
            created.append(name)
        return created

    def _live(self, manifests, absent_namespaces):
        """{object path: live object} for every manifest, one list request per collection, sent together."""
        collections = sorted({collection_path(m) for m in manifests
                              if (m["metadata"].get("namespace") not in absent_namespaces)})
        with ThreadPoolExecutor(WORKERS) as pool:
            answers = list(pool.map(lambda path: (path, self.client.get(path)), collections))
        live = {}
        for path, listed in answers:
            for item in listed.get("items", []):
                # A list's items carry no kind or apiVersion: the list says them once.
                item.update(kind=listed["kind"][:-len("List")], apiVersion=listed["apiVersion"])
                live[path + "/" + item["metadata"]["name"]] = item
        return live

    def _apply_one(self, manifest, live, absent_namespaces):
        result = {"ref": ref(manifest), "kind": manifest["kind"], "name": manifest["metadata"]["name"],
                  "namespace": manifest["metadata"].get("namespace")}
        if manifest["metadata"].get("namespace") in absent_namespaces:
            # Check mode with a namespace that does not exist yet: the API server cannot dry-run into it.
            result.update(action="created", before=None, after=manifest)
            return result
        path = object_path(manifest)
        before = live.get(path)
        answer = None
        if before is not None or self.check_mode:
            answer = self.client.patch(path, manifest, patch_type="apply", dry_run=True)
            if before is not None and _comparable(answer) == _comparable(before):
                result.update(action="unchanged", before=before, after=before)
                return result
        if not self.check_mode:
            answer = self.client.patch(path, manifest, patch_type="apply")
        result.update(action="created" if before is None else "updated", before=before, after=answer)
        return result

    def apply(self, manifests, absent_namespaces=()):
        """Apply every manifest; returns one result per manifest, in order. Raises ApplyError naming the objects
        that failed and those already applied."""
        live = self._live(manifests, set(absent_namespaces))
        with ThreadPoolExecutor(WORKERS) as pool:
            futures = [pool.submit(self._apply_one, m, live, set(absent_namespaces)) for m in manifests]
        results, failures = [], []
        for manifest, future in zip(manifests, futures):
            try:
                results.append(future.result())
            except K8sError as exc:
                failures.append((manifest, exc))
        if failures:
            raise ApplyError(failures, results)
        return results

    def delete(self, manifests):
        """Delete each object (an entry without a name: every object of its kind in its namespace carrying all of
        metadata.labels); returns [{ref, action: deleted|absent}]. The caller waits for them to go."""
        results = []
        for manifest in manifests:
            meta = manifest.get("metadata") or {}
            if meta.get("name"):
                targets = [manifest]
            else:
                selector = ",".join("%s=%s" % item for item in sorted((meta.get("labels") or {}).items()))
                if not selector:
                    raise K8sError("%s: an entry without a name needs metadata.labels" % ref(manifest))
                listed = self.client.get(collection_path(manifest), labelSelector=selector).get("items", [])
                targets = [dict(manifest, metadata=item["metadata"]) for item in listed]
            for target in targets:
                path = object_path(target)
                result = {"ref": ref(target), "kind": target["kind"], "name": target["metadata"]["name"],
                          "namespace": target["metadata"].get("namespace")}
                live = self.client.get_or_none(path)
                if live is None:
                    result["action"] = "absent"
                elif not self.check_mode:
                    try:
                        self.client.delete(path)
                        result.update(action="deleted", before=live)
                    except K8sError as exc:
                        if exc.status != 404:
                            raise
                        result["action"] = "absent"
                else:
                    result.update(action="deleted", before=live)
                results.append(result)
        return results

    def wait_gone(self, results, timeout):
        deadline = time.time() + timeout
        for result in results:
            if result["action"] != "deleted" or self.check_mode:
                continue
            path = object_path({"kind": result["kind"], "apiVersion": result["before"]["apiVersion"],
                                "metadata": {"name": result["name"], "namespace": result["namespace"]}})
            failures, what = Outage(), "%s to be deleted" % result["ref"]
            while failures.read(lambda path=path: self.client.get_or_none(path), deadline, what) is not None:
                if time.time() >= deadline:
                    raise K8sError("timed out after %ss waiting for %s to be deleted (a finalizer may hold it)"
                                   % (timeout, result["ref"]))
                time.sleep(0.5)


class ApplyError(K8sError):
    """Some objects failed; the others were applied (or unchanged)."""

    def __init__(self, failures, results):
        done = [r["ref"] + " " + r["action"] for r in results if r["action"] != "unchanged"]
        message = "; ".join("%s: %s" % (ref(m), ssa_message(exc)) for m, exc in failures)
        super(ApplyError, self).__init__(message, status=failures[0][1].status)
        self.failures = failures
        self.results = results
        self.done = done


def ssa_message(exc):
    """A server-side apply conflict is about ownership, not a race: say whose field it is and what to do."""
    text = str(exc)
    if exc.status == 409 and "conflict" in text.lower() and "apply" in text.lower():
        return (text.split(" — ", maxsplit=1)[0] + " — another field manager owns these fields and %s does not take them over. "
                "Fix: leave the field out of the variables, or remove the other manager's value "
                "(kubectl apply --server-side --force-conflicts --field-manager %s)" % (FIELD_MANAGER, FIELD_MANAGER))
    return text
