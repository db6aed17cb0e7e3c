"""A small CRI v1 client (`runtime.v1.RuntimeService`) for the e2e tests: crictl is not packaged here.

gRPC comes from `grpcio` (test extra) through its generic `channel.unary_unary(path, serializer, deserializer)`;
the messages are pyrunc's own codec (pyrunc/shim/wire.py) declared below, a subset of k8s.io/cri-api v1
`api.proto` with the same package, names and field numbers (tests/e2e/cri_proto/cri.proto declares the same subset;
tests/e2e/test_cri.py checks one against the other and round-trips every message through `protobuf`).
"""

from pyrunc.shim.wire import BOOL, BYTES, ENUM, INT32, INT64, Map, Msg, Repeated, STRING, UINT32

SERVICE = "runtime.v1.RuntimeService"

# enums
POD, CONTAINER, NODE, TARGET = range(4)                              # NamespaceMode
SANDBOX_READY, SANDBOX_NOTREADY = range(2)                           # PodSandboxState
CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED, CONTAINER_UNKNOWN = range(4)   # ContainerState

_SS = Map(STRING, STRING)


def _n(name):
    return "runtime.v1." + name


class VersionRequest(Msg):
    NAME = _n("VersionRequest")
    FIELDS = ((1, "version", STRING),)


class VersionResponse(Msg):
    NAME = _n("VersionResponse")
    FIELDS = ((1, "version", STRING), (2, "runtime_name", STRING), (3, "runtime_version", STRING),
              (4, "runtime_api_version", STRING))


class NamespaceOption(Msg):
    NAME = _n("NamespaceOption")
    FIELDS = ((1, "network", ENUM), (2, "pid", ENUM), (3, "ipc", ENUM), (4, "target_id", STRING))


class Int64Value(Msg):
    NAME = _n("Int64Value")
    FIELDS = ((1, "value", INT64),)


class LinuxSandboxSecurityContext(Msg):
    NAME = _n("LinuxSandboxSecurityContext")
    FIELDS = ((1, "namespace_options", NamespaceOption), (3, "run_as_user", Int64Value),
              (4, "readonly_rootfs", BOOL), (5, "supplemental_groups", Repeated(INT64)), (6, "privileged", BOOL),
              (8, "run_as_group", Int64Value))


class LinuxPodSandboxConfig(Msg):
    NAME = _n("LinuxPodSandboxConfig")
    FIELDS = ((1, "cgroup_parent", STRING), (2, "security_context", LinuxSandboxSecurityContext),
              (3, "sysctls", _SS))


class PodSandboxMetadata(Msg):
    NAME = _n("PodSandboxMetadata")
    FIELDS = ((1, "name", STRING), (2, "uid", STRING), (3, "namespace", STRING), (4, "attempt", UINT32))


class PodSandboxConfig(Msg):
    NAME = _n("PodSandboxConfig")
    FIELDS = ((1, "metadata", PodSandboxMetadata), (2, "hostname", STRING), (3, "log_directory", STRING),
              (6, "labels", _SS), (7, "annotations", _SS), (8, "linux", LinuxPodSandboxConfig))


class RunPodSandboxRequest(Msg):
    NAME = _n("RunPodSandboxRequest")
    FIELDS = ((1, "config", PodSandboxConfig), (2, "runtime_handler", STRING))


class RunPodSandboxResponse(Msg):
    NAME = _n("RunPodSandboxResponse")
    FIELDS = ((1, "pod_sandbox_id", STRING),)


class _SandboxId(Msg):
    FIELDS = ((1, "pod_sandbox_id", STRING),)


class StopPodSandboxRequest(_SandboxId):
    NAME = _n("StopPodSandboxRequest")


class RemovePodSandboxRequest(_SandboxId):
    NAME = _n("RemovePodSandboxRequest")


class StopPodSandboxResponse(Msg):
    NAME = _n("StopPodSandboxResponse")


class RemovePodSandboxResponse(Msg):
    NAME = _n("RemovePodSandboxResponse")


class PodSandboxStatusRequest(Msg):
    NAME = _n("PodSandboxStatusRequest")
    FIELDS = ((1, "pod_sandbox_id", STRING), (2, "verbose", BOOL))


class PodSandboxStatus(Msg):
    NAME = _n("PodSandboxStatus")
    FIELDS = ((1, "id", STRING), (2, "metadata", PodSandboxMetadata), (3, "state", ENUM), (4, "created_at", INT64),
              (7, "labels", _SS), (8, "annotations", _SS), (9, "runtime_handler", STRING))


class PodSandboxStatusResponse(Msg):
    NAME = _n("PodSandboxStatusResponse")
    FIELDS = ((1, "status", PodSandboxStatus), (2, "info", _SS))


class ListPodSandboxRequest(Msg):
    NAME = _n("ListPodSandboxRequest")


class PodSandbox(Msg):
    NAME = _n("PodSandbox")
    FIELDS = ((1, "id", STRING), (2, "metadata", PodSandboxMetadata), (3, "state", ENUM), (4, "created_at", INT64),
              (5, "labels", _SS), (6, "annotations", _SS), (7, "runtime_handler", STRING))


class ListPodSandboxResponse(Msg):
    NAME = _n("ListPodSandboxResponse")
    FIELDS = ((1, "items", Repeated(PodSandbox)),)


class ContainerMetadata(Msg):
    NAME = _n("ContainerMetadata")
    FIELDS = ((1, "name", STRING), (2, "attempt", UINT32))


class ImageSpec(Msg):
    NAME = _n("ImageSpec")
    FIELDS = ((1, "image", STRING), (2, "annotations", _SS))


class KeyValue(Msg):
    NAME = _n("KeyValue")
    FIELDS = ((1, "key", STRING), (2, "value", STRING))


class LinuxContainerSecurityContext(Msg):
    NAME = _n("LinuxContainerSecurityContext")
    FIELDS = ((2, "privileged", BOOL), (3, "namespace_options", NamespaceOption), (5, "run_as_user", Int64Value),
              (6, "run_as_username", STRING), (7, "readonly_rootfs", BOOL), (8, "supplemental_groups", Repeated(INT64)),
              (11, "no_new_privs", BOOL), (12, "run_as_group", Int64Value), (13, "masked_paths", Repeated(STRING)),
              (14, "readonly_paths", Repeated(STRING)))


class LinuxContainerConfig(Msg):
    NAME = _n("LinuxContainerConfig")
    FIELDS = ((2, "security_context", LinuxContainerSecurityContext),)


class ContainerConfig(Msg):
    NAME = _n("ContainerConfig")
    FIELDS = ((1, "metadata", ContainerMetadata), (2, "image", ImageSpec), (3, "command", Repeated(STRING)),
              (4, "args", Repeated(STRING)), (5, "working_dir", STRING), (6, "envs", Repeated(KeyValue)),
              (9, "labels", _SS), (10, "annotations", _SS), (11, "log_path", STRING), (12, "stdin", BOOL),
              (13, "stdin_once", BOOL), (14, "tty", BOOL), (15, "linux", LinuxContainerConfig))


class CreateContainerRequest(Msg):
    NAME = _n("CreateContainerRequest")
    FIELDS = ((1, "pod_sandbox_id", STRING), (2, "config", ContainerConfig), (3, "sandbox_config", PodSandboxConfig))


class CreateContainerResponse(Msg):
    NAME = _n("CreateContainerResponse")
    FIELDS = ((1, "container_id", STRING),)


class _ContainerId(Msg):
    FIELDS = ((1, "container_id", STRING),)


class StartContainerRequest(_ContainerId):
    NAME = _n("StartContainerRequest")


class RemoveContainerRequest(_ContainerId):
    NAME = _n("RemoveContainerRequest")


class StartContainerResponse(Msg):
    NAME = _n("StartContainerResponse")


class StopContainerResponse(Msg):
    NAME = _n("StopContainerResponse")


class RemoveContainerResponse(Msg):
    NAME = _n("RemoveContainerResponse")


class StopContainerRequest(Msg):
    NAME = _n("StopContainerRequest")
    FIELDS = ((1, "container_id", STRING), (2, "timeout", INT64))


class ContainerStatusRequest(Msg):
    NAME = _n("ContainerStatusRequest")
    FIELDS = ((1, "container_id", STRING), (2, "verbose", BOOL))


class ContainerStatus(Msg):
    NAME = _n("ContainerStatus")
    FIELDS = ((1, "id", STRING), (2, "metadata", ContainerMetadata), (3, "state", ENUM), (4, "created_at", INT64),
              (5, "started_at", INT64), (6, "finished_at", INT64), (7, "exit_code", INT32), (8, "image", ImageSpec),
              (9, "image_ref", STRING), (10, "reason", STRING), (11, "message", STRING), (12, "labels", _SS),
              (13, "annotations", _SS), (15, "log_path", STRING))


class ContainerStatusResponse(Msg):
    NAME = _n("ContainerStatusResponse")
    FIELDS = ((1, "status", ContainerStatus), (2, "info", _SS))


class ListContainersRequest(Msg):
    NAME = _n("ListContainersRequest")


class Container(Msg):
    NAME = _n("Container")
    FIELDS = ((1, "id", STRING), (2, "pod_sandbox_id", STRING), (3, "metadata", ContainerMetadata),
              (4, "image", ImageSpec), (5, "image_ref", STRING), (6, "state", ENUM), (7, "created_at", INT64),
              (8, "labels", _SS), (9, "annotations", _SS))


class ListContainersResponse(Msg):
    NAME = _n("ListContainersResponse")
    FIELDS = ((1, "containers", Repeated(Container)),)


class ExecSyncRequest(Msg):
    NAME = _n("ExecSyncRequest")
    FIELDS = ((1, "container_id", STRING), (2, "cmd", Repeated(STRING)), (3, "timeout", INT64))


class ExecSyncResponse(Msg):
    NAME = _n("ExecSyncResponse")
    FIELDS = ((1, "stdout", BYTES), (2, "stderr", BYTES), (3, "exit_code", INT32))


# method -> (request class, response class)
METHODS = {
    "Version": (VersionRequest, VersionResponse),
    "RunPodSandbox": (RunPodSandboxRequest, RunPodSandboxResponse),
    "StopPodSandbox": (StopPodSandboxRequest, StopPodSandboxResponse),
    "RemovePodSandbox": (RemovePodSandboxRequest, RemovePodSandboxResponse),
    "PodSandboxStatus": (PodSandboxStatusRequest, PodSandboxStatusResponse),
    "ListPodSandbox": (ListPodSandboxRequest, ListPodSandboxResponse),
    "CreateContainer": (CreateContainerRequest, CreateContainerResponse),
    "StartContainer": (StartContainerRequest, StartContainerResponse),
    "StopContainer": (StopContainerRequest, StopContainerResponse),
    "RemoveContainer": (RemoveContainerRequest, RemoveContainerResponse),
    "ListContainers": (ListContainersRequest, ListContainersResponse),
    "ContainerStatus": (ContainerStatusRequest, ContainerStatusResponse),
    "ExecSync": (ExecSyncRequest, ExecSyncResponse),
}

REGISTRY = {c.NAME: c for c in list(globals().values()) if isinstance(c, type) and issubclass(c, Msg) and c.NAME}


class RuntimeService:
    """`RuntimeService(socket_path).RunPodSandbox(req, timeout=...) -> RunPodSandboxResponse`, one attribute per
    method in METHODS; gRPC errors surface as grpc.RpcError (code(), details())."""

    def __init__(self, socket_path):
        import grpc

        self.channel = grpc.insecure_channel("unix://" + socket_path)
        for method, (req_cls, resp_cls) in METHODS.items():
            setattr(self, method, self._stub(method, req_cls, resp_cls))

    def _stub(self, method, req_cls, resp_cls):
        call = self.channel.unary_unary("/%s/%s" % (SERVICE, method), request_serializer=req_cls.encode,
                                        response_deserializer=resp_cls.decode)

        def invoke(req, timeout=60):
            if not isinstance(req, req_cls):
                raise TypeError("%s takes a %s" % (method, req_cls.NAME))
            return call(req, timeout=timeout)
        invoke.__name__ = method
        return invoke

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
