"""Placeholder for dockerd end-to-end tests (docker is not installed on the dev VM).

What they would cover once dockerd is available (see /work/shared/CALLERS.md): dockerd runs
``<runtime> features`` at start and ``<runtime> --version`` for ``docker info``; container
networking goes through the ``libnetwork-setkey`` prestart hook; ``docker build`` runs
``runc`` from PATH in the foreground (``run --bundle B ID``).
"""

import shutil

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("runtime_name", ["runc", "pyrunc"])
def test_docker_run_with_runtime(runtime_name):
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("dockerd is not installed (docker e2e tests need a docker engine; not installed on purpose)")
    pytest.skip("docker e2e scenarios are not written yet")
