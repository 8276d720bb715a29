"""The images of `make deploy`'s example: pinned, public, and built by the test bed under the same name
from the same upstream release, which testbed/images/PUBLIC.md names for each public name."""
import re
import subprocess
from pathlib import Path

import yaml

from ..versions_env import pinned as pinned_versions

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "playbooks" / "vars" / "example.yml"
OVERRIDES = REPO / "testbed" / "example-overrides.yml"
PUBLIC = REPO / "testbed" / "images" / "PUBLIC.md"
LOCAL = "localhost/toolhive-testbed/"


def built_images():
    """What testbed/images.sh builds (its `names`)."""
    return subprocess.run([str(REPO / "testbed" / "images.sh"), "names"], capture_output=True, text=True,
                          check=True, timeout=60).stdout.split()


def public_table():
    """{public name with versions.env's values in place: (upstream cell, version in brackets)} of PUBLIC.md."""
    env = pinned_versions()
    rows = {}
    for line in PUBLIC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([^`]+)`", cells[0]) if line.startswith("|") else None
        if match:
            name = re.sub(r"\$([A-Z_]+)", lambda m: env[m.group(1)], match.group(1))
            stated = re.search(r"\(([^()]+)\)\s*$", cells[1])
            rows[name] = (cells[1], stated.group(1) if stated else None)
    return rows


def pinned(image):
    """A tag that is not `latest` (the last path element has a colon)."""
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return bool(tag) and tag != "latest" and "@" not in image


def example_images():
    data = yaml.safe_load(EXAMPLE.read_text())
    return [s["image"] for s in data["mcpserver_servers"]]


def test_example_has_no_latest_and_every_image_pinned():
    assert ":latest" not in EXAMPLE.read_text()
    images = example_images()
    assert len(images) == 2, images
    assert all(pinned(i) for i in images), images


def test_example_images_are_public_and_built_by_the_test_bed():
    """A user's cluster pulls them; the test bed's real node has them under the same names."""
    built = built_images()
    for image in example_images():
        assert not image.startswith(("localhost/", LOCAL)), f"{image}: a local name cannot work on a user's cluster"
        assert image in built, f"{image} is not built by testbed/images.sh ({built})"


def test_every_public_name_the_test_bed_builds_is_in_the_table_with_its_version():
    built = built_images()
    assert all(pinned(i) for i in built), built
    table = public_table()
    public = [i for i in built if not i.startswith(LOCAL)]
    assert public, built
    for image in public:
        assert image in table, f"{image} is built under a public name but not listed in {PUBLIC.name}"
        upstream, version = table[image]
        assert version and version == image.rsplit(":", 1)[1], (
            f"{PUBLIC.name}: {image}'s row states version {version!r} ({upstream})")
    # And no row for an image the test bed does not build (a stale row misleads the reader).
    assert set(table) <= set(public), set(table) - set(public)


def test_the_npm_lock_pins_the_release_in_versions_env():
    env = pinned_versions()
    package = yaml.safe_load((REPO / "testbed" / "images" / "server-everything" / "package.json").read_text())
    assert package["dependencies"] == {"@modelcontextprotocol/server-everything": env["SERVER_EVERYTHING_VERSION"]}
    lock = yaml.safe_load((REPO / "testbed" / "images" / "server-everything" / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/@modelcontextprotocol/server-everything"]
    assert entry["version"] == env["SERVER_EVERYTHING_VERSION"]
    assert all("integrity" in p for k, p in lock["packages"].items() if k), "every locked package has its hash"
    pins = (REPO / "testbed" / "images" / "mcp-server-time.txt").read_text()
    assert f"\nmcp-server-time=={env['MCP_SERVER_TIME_VERSION']}\n" in pins


def test_overrides_hold_only_the_local_redis_image():
    """Only redis_image, pinned, under the test bed's local name. Its tag is the Debian package's version, which
    only a machine with redis-tools installed knows: tests/integration/kind/test_kind_bed.py checks it against
    the image the kind bed runs."""
    overrides = yaml.safe_load(OVERRIDES.read_text())
    assert list(overrides) == ["redis_image"], overrides
    assert overrides["redis_image"].startswith(LOCAL + "redis-debian:"), overrides
    assert pinned(overrides["redis_image"]), overrides
