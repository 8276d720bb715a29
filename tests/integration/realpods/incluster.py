"""traffic.py's clients in a pod of the cluster, calling each Service by its DNS name as a user's client in the
cluster does: no API server between the client and the Service.

`traffic_in_cluster` (on the host) puts this package in a ConfigMap and starts a pod of the mcp-client image
(testbed/images.sh) on the control plane's node, which node drains leave alone. The pod runs this module: once its
clients call, it prints READY; the host runs the action, then creates STOP in the pod; the pod's clients stop 5 s later
and it prints their tallies as one line of JSON, which the host reads from its log.

    python3 -m realpods.incluster NAMESPACE LIMIT SERVICES_JSON    (in the pod)
"""
import asyncio
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .serviceclient import direct_session
from .traffic import Tally, calling_during

READY, STOP = "calling", "/tmp/stop"
CODE = ("__init__.py", "traffic.py", "serviceclient.py", "podclient.py", "incluster.py")


async def until_stopped():
    """The action in the pod: say READY, then wait for the host to create STOP."""
    print(READY, flush=True)
    while not os.path.exists(STOP):
        await asyncio.sleep(0.2)


def main(namespace, limit, services):
    _stopped, tallies = asyncio.run(calling_during(functools.partial(direct_session, namespace), json.loads(services),
                                                   until_stopped, int(limit)))
    print(json.dumps({name: [vars(tally) for tally in pair] for name, pair in tallies.items()}), flush=True)


def restored(fields):
    """A Tally from its JSON fields."""
    tally = Tally()
    vars(tally).update(fields, failures=[tuple(f) for f in fields["failures"]], slowest=tuple(fields["slowest"]))
    return tally


def pod_manifest(name, namespace, image, code, limit, services):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "mcp-client"}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 3600,  # bounded in time whatever the host does
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "Never", "workingDir": "/opt/client",
                "command": ["python3", "-m", "realpods.incluster", namespace, str(limit), json.dumps(services)],
                "volumeMounts": [{"name": "code", "mountPath": "/opt/client/realpods", "readOnly": True}]}],
            "volumes": [{"name": "code", "configMap": {"name": code}}]}}


async def traffic_in_cluster(kubeconfig, namespace, services, action, image, limit=3000):
    """traffic.traffic_during's twin: ACTION (blocking) runs while the clients call from a pod of IMAGE in NAMESPACE.
    Returns (ACTION's result, {name: (long-lived, new) tallies})."""
    def kubectl(*args, **kwargs):
        return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "-n", namespace, *args], check=True,
                              capture_output=True, text=True, timeout=60, **kwargs).stdout

    name = f"mcp-client-{uuid.uuid4().hex[:8]}"
    here = Path(__file__).parent
    kubectl("create", "configmap", name, *(f"--from-file={here / f}" for f in CODE))
    try:
        kubectl("apply", "-f", "-", input=json.dumps(pod_manifest(name, namespace, image, name, limit, services)))
        await asyncio.to_thread(wait_for_log, kubectl, name, lambda log: READY in log.splitlines(), 120)
        result = await asyncio.to_thread(action)
        kubectl("exec", name, "--", "python3", "-c", f"open({STOP!r}, 'w')")
        log = await asyncio.to_thread(wait_for_log, kubectl, name, lambda log: log.rstrip().endswith("}"), 180)
        tallies = json.loads(log.rstrip().splitlines()[-1])
        return result, {service: tuple(restored(t) for t in pair) for service, pair in tallies.items()}
    finally:
        kubectl("delete", "pod,configmap", name, "--wait=false", "--ignore-not-found")


def wait_for_log(kubectl, pod, done, timeout):
    """The pod's log once DONE(log) says yes; fails when the pod ends before, or after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        phase = kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}")
        log = kubectl("logs", pod) if phase in ("Running", "Succeeded", "Failed") else ""
        if done(log):
            return log
        if phase in ("Succeeded", "Failed") or time.monotonic() > deadline:
            raise AssertionError(f"the in-cluster client {pod} ({phase}) did not get there; its log: {log[:3000]}"
                                 f"{' ... ' + log[-3000:] if len(log) > 6000 else log[3000:]}")
        time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
