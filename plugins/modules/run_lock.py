#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: run_lock
short_description: One deploy or teardown at a time per namespace (a Kubernetes Lease)
version_added: 0.3.0
description:
  - Takes, renews or releases the Lease C(toolhive-k8s-run) in each of O(namespaces), so that two runs of the
    collection's deploy and teardown pipelines never write one namespace at the same time (the second run would
    otherwise report success for a state the first one changed under it).
  - O(state=present) takes each namespace's Lease in name order (so two runs never wait on each other), or renews it
    when O(holder) already holds it. A Lease another run holds is waited for, up to O(wait_timeout) seconds, saying
    who holds it; then the task fails naming the holder, since when, and how to release a Lease whose run is gone.
    A Lease not renewed for its O(lease_seconds) has expired (its run is gone), and is taken over.
  - A Lease whose run is known to be gone is taken over at once - its C(ansible-playbook) process ran on this very
    controller (O(controller)) and is no longer running.
  - A namespace that does not exist yet has nothing to lock (no run has written it); it is returned in
    RV(missing), and the caller takes it again once it has created the namespace.
  - O(state=absent) releases the Leases O(holder) holds, and nothing else. An API server that cannot be reached then
    is a warning, not a failure; the Lease expires on its own, or the controller's next run takes it over.
  - Takes, renews and releases with the Lease's resourceVersion, so two runs racing for one Lease end with one
    holder (the API server answers the other with a conflict, and it waits).
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
options:
  namespaces:
    description: The namespaces the run writes.
    type: list
    elements: str
    required: true
  holder:
    description:
      - Who holds the Leases, as the Lease's C(holderIdentity) says (the run's own identity). Without it the module
        makes one (user, host, time and a random part) and returns it in RV(holder), for the release.
    type: str
  state:
    description: C(present) takes or renews; C(absent) releases.
    type: str
    choices: [present, absent]
    default: present
  wait_timeout:
    description: Seconds to wait for a Lease another run holds.
    type: int
    default: 600
  lease_seconds:
    description: Seconds a Lease holds without renewal (the longest a run may take; a run killed on the way blocks
      others for no longer than this).
    type: int
    default: 1800
  controller:
    description:
      - Where the run's C(ansible-playbook) process is, set by the module's action plugin (C(host), C(pid)) and kept
        on the Lease. A later run on the same controller takes over a Lease whose process is gone (killed, or its
        API server lost before the release) at once, instead of waiting for it to expire.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Reads who holds each Lease and says so; takes, waits for and releases nothing.
  diff_mode:
    support: none
    description: A Lease is the run's own bookkeeping, released by its end, so the task never reports a change;
      RV(taken) and RV(released) say what it did.
"""

EXAMPLES = r"""
- name: One run at a time in these namespaces
  toolhive.k8s.run_lock:
    namespaces: [toolhive, toolhive-redis]
  register: lock

- name: Release them, whatever happened
  toolhive.k8s.run_lock:
    namespaces: [toolhive, toolhive-redis]
    holder: "{{ lock.holder }}"
    state: absent
"""

RETURN = r"""
holder:
  description: The run's identity, as written to each Lease's C(holderIdentity).
  returned: always
  type: str
  sample: "deploy of alice@ctl-1 at 2026-12-05T09:50:00Z (4f2a9c1e)"
taken:
  description: The namespaces whose Lease this task took (not renewed ones).
  returned: state is present
  type: list
  elements: str
waited:
  description: Seconds this task waited for other runs' Leases.
  returned: state is present
  type: float
missing:
  description: Namespaces that do not exist yet, so were not locked.
  returned: state is present
  type: list
  elements: str
held_by:
  description: In check mode, who holds each namespace's Lease now (C(null) when nobody does).
  returned: check mode
  type: dict
released:
  description: The namespaces whose Lease this task released.
  returned: state is absent
  type: list
  elements: str
"""

import datetime
import getpass
import os
import secrets
import socket
import time

from ansible_collections.toolhive.k8s.plugins.module_utils.applier import collection_path, object_path
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError
from ansible_collections.toolhive.k8s.plugins.module_utils.waiter import Outage

LEASE = "toolhive-k8s-run"
POLL_SECONDS = 2


def lease(namespace):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE, "namespace": namespace}}


def lease_path(namespace):
    return object_path(lease(namespace))


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def micro_time(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text):
    if not text:
        return None
    return datetime.datetime.strptime(text.replace("Z", "+0000"),
                                      "%Y-%m-%dT%H:%M:%S.%f%z" if "." in text else "%Y-%m-%dT%H:%M:%S%z")


def default_holder():
    return "a run of %s@%s at %s (%s)" % (getpass.getuser(), socket.gethostname(),
                                          now().strftime("%Y-%m-%dT%H:%M:%SZ"), secrets.token_hex(4))


def expired(found, moment):
    """A Lease nobody renewed within its duration: the run that held it is gone."""
    spec = found.get("spec") or {}
    renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    return renewed is None or renewed + datetime.timedelta(seconds=duration) < moment


# Where the holding run's ansible-playbook process is, on the Lease.
CONTROLLER_HOST = "toolhive.k8s/controller-host"
CONTROLLER_PID = "toolhive.k8s/controller-pid"


def process_gone(found):
    """The Lease's run ran on this host and its process is no longer running."""
    notes = (found.get("metadata") or {}).get("annotations") or {}
    if notes.get(CONTROLLER_HOST) != socket.gethostname() or not (notes.get(CONTROLLER_PID) or "").isdigit():
        return False
    try:
        os.kill(int(notes[CONTROLLER_PID]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


def held_by_other(found, holder, moment):
    spec = (found or {}).get("spec") or {}
    return (found is not None and spec.get("holderIdentity") not in (None, "", holder) and not expired(found, moment)
            and not process_gone(found))


def describe(namespace, found):
    spec = found.get("spec") or {}
    since = spec.get("acquireTime") or "?"
    until = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    ends = micro_time(until + datetime.timedelta(seconds=spec.get("leaseDurationSeconds") or 0)) if until else "?"
    return ("namespace %s is being deployed or torn down by %s (since %s; the lock expires at %s unless renewed)"
            % (namespace, spec.get("holderIdentity"), since, ends))


def controller_notes(controller):
    if not controller.get("host") or not controller.get("pid"):
        return {}
    return {CONTROLLER_HOST: str(controller["host"]), CONTROLLER_PID: str(controller["pid"])}


def take(client, namespace, holder, lease_seconds, controller):
    """Take or renew NAMESPACE's Lease for HOLDER; returns "taken", "renewed", "busy" (another run holds it) or
    "missing" (no such namespace). A conflict (another run wrote the Lease since it was read) is "busy": reread."""
    found = client.get_or_none(lease_path(namespace))
    moment = now()
    if held_by_other(found, holder, moment):
        return "busy", found
    spec = {"holderIdentity": holder, "leaseDurationSeconds": lease_seconds, "renewTime": micro_time(moment)}
    try:
        if found is None:
            spec["acquireTime"] = micro_time(moment)
            body = lease(namespace)
            body["metadata"].update(labels={"app.kubernetes.io/managed-by": "toolhive.k8s"},
                                    annotations=controller_notes(controller))
            client.create(collection_path(body), dict(body, spec=spec))
            return "taken", None
        renewing = (found.get("spec") or {}).get("holderIdentity") == holder
        meta = dict(found["metadata"])
        if not renewing:
            spec["acquireTime"] = micro_time(moment)
            meta["annotations"] = dict(meta.get("annotations") or {}, **controller_notes(controller))
        # With its resourceVersion: a 409 if anyone wrote it since it was read.
        client.replace(lease_path(namespace), dict(found, metadata=meta, spec=dict(found.get("spec") or {}, **spec)))
        return ("renewed" if renewing else "taken"), None
    except K8sError as exc:
        if exc.status == 409:
            return "busy", client.get_or_none(lease_path(namespace))
        if exc.status == 404 or (exc.status == 403 and "being terminated" in str(exc)):
            return "missing", None  # no namespace, or one being deleted: nothing to lock (the deploy refuses it)
        raise


def acquire(client, params):
    holder, taken, missing = params["holder"], [], []
    started, failures = time.monotonic(), Outage()  # a restarting or throttling API server is asked again
    for namespace in sorted(set(params["namespaces"])):
        told = False
        while True:
            outcome, holding = failures.read(
                lambda namespace=namespace: take(client, namespace, holder, params["lease_seconds"], params["controller"]),
                time.time() + max(0, params["wait_timeout"] - (time.monotonic() - started)),
                "the run lock of namespace %s" % namespace)
            if outcome in ("taken", "renewed", "missing"):
                (taken if outcome == "taken" else missing if outcome == "missing" else []).append(namespace)
                break
            if time.monotonic() - started > params["wait_timeout"]:
                raise K8sError("%s; waited %d s (wait_timeout). Run again once it is done; if that run is gone (its "
                               "process killed), its lock expires on its own, or release it now: kubectl delete lease "
                               "%s -n %s" % (describe(namespace, holding or {}), params["wait_timeout"], LEASE, namespace))
            if not told and holding:
                told = True  # said once per namespace, in the result's warnings
                params["warn"]("waiting: " + describe(namespace, holding))
            time.sleep(POLL_SECONDS)
    return dict(taken=taken, missing=missing, waited=round(time.monotonic() - started, 1))


def release(client, params):
    released = []
    for namespace in sorted(set(params["namespaces"])):
        try:
            found = client.get_or_none(lease_path(namespace))
        except K8sError as exc:
            if exc.status is not None:
                raise
            params["warn"]("could not release the run lock of namespace %s (%s): it expires on its own, and this "
                           "controller's next run takes it over" % (namespace, exc))
            continue
        if not found or (found.get("spec") or {}).get("holderIdentity") != params["holder"]:
            continue
        meta = found["metadata"]
        try:
            client.delete(lease_path(namespace), preconditions={"uid": meta["uid"],
                                                                "resourceVersion": meta["resourceVersion"]})
            released.append(namespace)
        except K8sError as exc:
            if exc.status not in (404, 409):  # gone already, or taken over since: not ours to delete
                raise
    return dict(released=released)


def run(module, client):
    params = dict(module.params, warn=module.warn)
    params["holder"] = params["holder"] or default_holder()
    for field in ("wait_timeout", "lease_seconds"):
        if params[field] < 1:
            module.fail_json(msg="%s = %s must be 1 or more seconds" % (field, params[field]))
    result = dict(changed=False, holder=params["holder"])
    if module.check_mode:
        held = {}
        for namespace in sorted(set(params["namespaces"])):
            found = client.get_or_none(lease_path(namespace))
            held[namespace] = (found.get("spec") or {}).get("holderIdentity") \
                if found and not expired(found, now()) else None
        return dict(result, held_by=held, taken=[], missing=[], waited=0.0, released=[])
    # Never "changed": a Lease is the run's own bookkeeping, gone by its end; RV(taken) and RV(released) say what
    # this task did, and a rerun that changes nothing else reports no change.
    result.update(acquire(client, params) if params["state"] == "present" else release(client, params))
    return result


def main():
    argument_spec = dict(
        namespaces=dict(type="list", elements="str", required=True),
        holder=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        wait_timeout=dict(type="int", default=600),
        lease_seconds=dict(type="int", default=1800),
        controller=dict(type="dict", default={}),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()
