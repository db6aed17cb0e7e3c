"""Kubernetes: a RuntimeClass whose handler is the containerd CRI runtime name (pods opt in by runtimeClassName)."""

import re

from . import GlueError

_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HANDLER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def manifest(name, handler):
    if len(name) > 253 or not _DNS.match(name):
        raise GlueError(f"runtimeclass name {name!r}: must be a lowercase DNS subdomain")
    if len(handler) > 63 or not _HANDLER.match(handler):
        # node.k8s.io/v1 validates the handler as a DNS label, so the containerd runtime name must be one too
        raise GlueError(f"runtimeclass handler {handler!r}: must be a lowercase DNS label (the containerd runtime name)")
    return ("apiVersion: node.k8s.io/v1\n"
            "kind: RuntimeClass\n"
            "metadata:\n"
            f"  name: {name}\n"
            f"handler: {handler}\n")
