"""pyrunc-config: print (or, with --write, merge into the file) the config that makes a caller use pyrunc.

    pyrunc-config containerd [--config /etc/containerd/config.toml] [--name pyrunc] [--binary PATH | --shim] [--write]
    pyrunc-config docker [--config /etc/docker/daemon.json] [--name pyrunc] [--binary PATH] [--write]
    pyrunc-config kubernetes [--name pyrunc] [--handler pyrunc]

Not a hot path, so click is fine here.  The daemons are never restarted for you: the message says what to run.
"""

import functools
import sys

import click

from . import GlueError, containerd, docker, files, kubernetes


def _apply(path, edit, name, binary, write, snippet, restart, *, what=None):
    """Print the snippet, or merge the entry into the file; `what` names the entry when it is not a binary."""
    if what is None:
        binary = files.resolve_binary(binary, must_exist=write)
    if not write:
        click.echo(snippet(name, binary), nl=False)
        return
    old = files.read(path)
    new = edit(old, name, binary, path)
    changed, saved = files.update(path, old, new)
    if not changed:
        click.echo(f"{path}: runtime {name} already set to {what or binary}, nothing changed")
        return
    click.echo(f"{path}: runtime {name} -> {what or binary}" + (f" (backup: {saved})" if saved else " (new file)"))
    click.echo(f"restart to apply: {restart}")


_name = click.option("--name", default="pyrunc", show_default=True, help="runtime name (the CRI handler)")
_binary = click.option("--binary", default=None, help="absolute path of pyrunc [default: the installed pyrunc]")
_write = click.option("--write", is_flag=True, help="edit the file in place (backup first) instead of printing")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Configure containerd, docker and Kubernetes to run containers with pyrunc."""


@cli.command("containerd")
@click.option("--config", "path", default="/etc/containerd/config.toml", show_default=True)
@_name
@_binary
@click.option("--shim", is_flag=True, help=f"use pyrunc's own shim ({containerd.PYRUNC_SHIM}) instead of "
                                             "containerd-shim-runc-v2 + BinaryName")
@_write
@click.option("--systemd-cgroup", is_flag=True, help="systemd cgroup driver (SystemdCgroup = true): use it when "
              "the kubelet's cgroupDriver is systemd")
def containerd_cmd(path, name, binary, shim, write, systemd_cgroup):
    """CRI runtime entry for containerd's config.toml (version 2)."""
    restart = "systemctl restart containerd"
    if not shim:
        _apply(path, functools.partial(containerd.edit, systemd_cgroup=systemd_cgroup), name, binary, write,
               functools.partial(containerd.commented_snippet, systemd_cgroup=systemd_cgroup), restart)
        return
    if binary:
        raise GlueError("--binary has no effect with --shim: the shim runs pyrunc's library in-process")
    if systemd_cgroup:
        raise GlueError("--systemd-cgroup with --shim: not supported by pyrunc-config yet (set systemd_cgroup = true "
                        "in the shim's runtime options file, see README)")
    _apply(path, functools.partial(containerd.edit, shim=True), name, None, write,
           functools.partial(containerd.commented_snippet, shim=True), restart,
           what=f"{containerd.PYRUNC_SHIM} ({containerd.PYRUNC_SHIM_BINARY})")
    note = files.shim_note(files.find_shim())
    if note:
        click.echo(note, err=True)


@cli.command("docker")
@click.option("--config", "path", default="/etc/docker/daemon.json", show_default=True)
@_name
@_binary
@_write
def docker_cmd(path, name, binary, write):
    """runtimes entry for docker's daemon.json."""
    _apply(path, docker.edit, name, binary, write, docker.snippet, "systemctl reload docker (or restart)")


@cli.command("kubernetes")
@click.option("--name", default="pyrunc", show_default=True, help="RuntimeClass name (pods' runtimeClassName)")
@click.option("--handler", default="pyrunc", show_default=True,
              help="the containerd runtime name (the --name given to `pyrunc-config containerd [--shim]`)")
def kubernetes_cmd(name, handler):
    """RuntimeClass manifest (kubectl apply -f -)."""
    click.echo(kubernetes.manifest(name, handler), nl=False)


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="pyrunc-config", standalone_mode=False)
    except GlueError as e:
        click.echo(f"pyrunc-config: {e}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except OSError as e:
        click.echo(f"pyrunc-config: {e.strerror.lower() if e.strerror else e}: {e.filename or ''}", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
