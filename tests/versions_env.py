"""testbed/versions.env, the test bed's pinned versions, as the shell scripts read it (`source`): one reader for
every Python test and the suite's runner."""
import re
from pathlib import Path

VERSIONS_ENV = Path(__file__).resolve().parents[1] / "testbed" / "versions.env"


def pinned():
    """{NAME: value} of every assignment in testbed/versions.env (values are single words there)."""
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(\S+)", VERSIONS_ENV.read_text(), re.M))
