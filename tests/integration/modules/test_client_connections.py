"""The collection's client opening several TLS connections to the real API server at once.

urllib3 re-sets the ALPN protocols on the shared SSLContext for every new connection, which races with another
thread's connection setup in CPython (python/cpython#141012): now and then the API server got a garbled
ClientHello and answered "tlsv1 alert decode error" (seen once in CI, in toolhive.k8s.apply's 8 workers). The
client therefore sets connections up one at a time. These tests measure that on real connections, with a
control showing that plain urllib3 pools do overlap under the same load.
"""
import sys
import threading
import time

import urllib3

from ..conftest import REPO

sys.path.insert(0, str(REPO / ".collections"))
from ansible_collections.toolhive.k8s.plugins.module_utils.client import (  # noqa: E402
    K8sClient, connection_from_kubeconfig)

THREADS = 8


def connect_intervals(client, monkeypatch):
    """THREADS requests at once through CLIENT, each on a new connection: the (start, end) of each TLS setup."""
    intervals = []
    plain_connect = urllib3.connection.HTTPSConnection.connect

    def timed_connect(conn):
        start = time.monotonic()
        plain_connect(conn)
        time.sleep(0.05)  # widen each setup so that overlapping ones cannot miss each other
        intervals.append((start, time.monotonic()))

    monkeypatch.setattr(urllib3.connection.HTTPSConnection, "connect", timed_connect)
    barrier = threading.Barrier(THREADS)
    answers = []

    def one():
        barrier.wait()
        answers.append(client.get("/api/v1/namespaces/default"))

    threads = [threading.Thread(target=one) for _thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == THREADS and all(a["metadata"]["name"] == "default" for a in answers), answers
    return sorted(intervals)


def overlapping(intervals):
    return [(a, b) for a, b in zip(intervals, intervals[1:]) if b[0] < a[1]]


def test_new_tls_connections_are_set_up_one_at_a_time(kubeconfig, monkeypatch):
    client = K8sClient(connection_from_kubeconfig(kubeconfig))
    intervals = connect_intervals(client, monkeypatch)
    assert len(intervals) == THREADS, intervals  # each request had a connection of its own
    assert not overlapping(intervals), overlapping(intervals)


def test_control_plain_urllib3_pools_set_connections_up_together(kubeconfig, monkeypatch):
    """Without the client's pool class, the same load does overlap: the test above can see a race."""
    client = K8sClient(connection_from_kubeconfig(kubeconfig))
    client.pool.pool_classes_by_scheme = dict(client.pool.pool_classes_by_scheme, https=urllib3.HTTPSConnectionPool)
    intervals = connect_intervals(client, monkeypatch)
    assert len(intervals) == THREADS and overlapping(intervals), intervals
