"""Pack a directory as a one-layer image in docker-archive format.

    mkimage.py OUT.tar NAME:TAG ROOTFS [--entrypoint JSON] [--cmd JSON] [--env K=V]...
               [--workdir DIR] [--user UID[:GID]] [--label K=V]... [--stop-signal SIG]

`ctr images import` and `docker load` read the result; no registry is involved.
The layer is streamed through a file: a kind node's root filesystem is large. The archive is deterministic (fixed mtimes, sorted entries, owners
kept as numeric ids), so an unchanged ROOTFS gives the same image id.
"""
import argparse
import hashlib
import io
import json
import os
import tarfile


def write_layer(rootfs, out):
    """Write ROOTFS as a tar to OUT; return its sha256 digest."""
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                info = tar.gettarinfo(path, os.path.relpath(path, rootfs))
                info.mtime = 0
                info.uname = info.gname = ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("name")
    p.add_argument("rootfs")
    p.add_argument("--entrypoint", type=json.loads)
    p.add_argument("--cmd", type=json.loads)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--workdir", default="/")
    p.add_argument("--user", default="")
    p.add_argument("--stop-signal")
    a = p.parse_args()
    if a.name.endswith(":latest") or ":" not in a.name.rsplit("/", 1)[-1]:
        p.error(f"{a.name}: give a pinned tag (a :latest image makes the kubelet pull)")

    tmp = a.out + ".tmp"
    layer_file = a.out + ".layer"
    diff_id = "sha256:" + write_layer(a.rootfs, layer_file)
    config = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": a.entrypoint, "Cmd": a.cmd, "WorkingDir": a.workdir, "User": a.user,
            "Labels": dict(kv.split("=", 1) for kv in a.label) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "testbed/images/mkimage.py"}],
    }
    if a.stop_signal:
        config["config"]["StopSignal"] = a.stop_signal
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id[len("sha256:"):] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [a.name], "Layers": [layer_name]}]).encode()
    size = os.path.getsize(layer_file)
    with tarfile.open(tmp, "w") as tar:
        info = tarfile.TarInfo(layer_name)
        info.size = size
        with open(layer_file, "rb") as f:
            tar.addfile(info, f)
        for name, data in ((config_name, config_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.remove(layer_file)
    os.replace(tmp, a.out)
    print(f"{a.name} {size // 1024} KiB")


if __name__ == "__main__":
    main()
