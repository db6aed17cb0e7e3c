"""Id-mapped bind mounts (mounts[].uidMappings/gidMappings, runtime-spec 1.2): ownership seen through the mount is
shifted by the mapping, the host files are untouched, and a mapping on a non-bind mount is refused."""

import os

from .test_container import sh


def test_idmapped_bind_mount_shifts_ownership(pyrunc, bundle, tmp_path):
    src = tmp_path / "shared"
    src.mkdir()
    (src / "f").write_text("x")  # owned by root (0:0) on the host

    def edit(c):
        c["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src), "options": ["rbind", "rw"],
                            "uidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}],
                            "gidMappings": [{"containerID": 0, "hostID": 5678, "size": 1}]})

    out = sh(pyrunc, bundle, "stat -c '%u:%g' /mnt/f; grep ' /mnt ' /proc/self/mountinfo", edit=edit)
    owner, mnt = out.splitlines()
    assert owner == "1234:5678", "on-disk 0:0 is seen as the mapped host ids through the id-mapped mount"
    assert "idmapped" in mnt.split(" - ")[0], mnt
    st = os.stat(src / "f")
    assert (st.st_uid, st.st_gid) == (0, 0), "the host file's ownership must not change"


def test_idmap_on_a_non_bind_mount_is_refused(pyrunc, bundle):
    def edit(c):
        c["mounts"].append({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                            "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                            "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]})

    b = bundle(["true"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("idmap"))
    assert p.returncode == 1
    assert "id mappings are only supported on bind mounts" in p.err
