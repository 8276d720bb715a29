"""Unit tests import the collection as Ansible does: from .collections/ (`make collection`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
