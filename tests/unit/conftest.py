"""Unit tests import the collection as Ansible does: from .collections/ (`make collection`), through ansible-core's
collection loader, so that a template's toolhive.k8s filters load as in a play, on every ansible-core line."""
from pathlib import Path

from ansible.plugins.loader import init_plugin_loader

init_plugin_loader([str(Path(__file__).resolve().parents[2] / ".collections")])
