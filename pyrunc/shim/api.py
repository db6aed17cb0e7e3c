"""The messages the shim speaks: same packages, names and field numbers as containerd 1.6.20.

Sources of the numbers (SHIM.md §2-§4, §7): ttrpc `request.proto`, google.rpc `status.proto`, containerd
`runtime/v2/task/shim.proto`, `api/types/{mount,task/task}.proto`, `api/events/task.proto`,
`api/services/{ttrpc/,}events/v1/events.proto`, `runtime/v2/runc/options/oci.proto`, `pkg/runtimeoptions/v1/api.proto`,
and the cgroups `stats/v1` and `v2/stats` `metrics.proto` vendored by containerd. pyrunc/shim/proto/*.proto declares the
same subset in .proto form; tests/unit/test_shim_wire.py checks both against each other and round-trips every message
through the `protobuf` package.
"""

from .wire import Any, BOOL, BYTES, Empty, INT32, INT64, ENUM, Map, Msg, Repeated, STRING, Timestamp, UINT32

# --- ttrpc envelopes and google.rpc.Status ------------------------------------------------------------------------


class Status(Msg):
    NAME = "google.rpc.Status"
    FIELDS = ((1, "code", INT32), (2, "message", STRING), (3, "details", Repeated(Any)))


class KeyValue(Msg):
    NAME = "ttrpc.KeyValue"
    FIELDS = ((1, "key", STRING), (2, "value", STRING))


class Request(Msg):
    NAME = "ttrpc.Request"
    FIELDS = ((1, "service", STRING), (2, "method", STRING), (3, "payload", BYTES), (4, "timeout_nano", INT64),
              (5, "metadata", Repeated(KeyValue)))


class Response(Msg):
    NAME = "ttrpc.Response"
    FIELDS = ((1, "status", Status), (2, "payload", BYTES))


# --- containerd.types, containerd.v1.types -------------------------------------------------------------------------


class Mount(Msg):
    NAME = "containerd.types.Mount"
    FIELDS = ((1, "type", STRING), (2, "source", STRING), (3, "target", STRING), (4, "options", Repeated(STRING)))


# containerd.v1.types.Status (an enum; StateResponse.status)
UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING = range(6)


class ProcessInfo(Msg):
    NAME = "containerd.v1.types.ProcessInfo"
    FIELDS = ((1, "pid", UINT32), (2, "info", Any))


# --- containerd.task.v2 ---------------------------------------------------------------------------------------------

TASK_SERVICE = "containerd.task.v2.Task"


def _t(name):
    return "containerd.task.v2." + name


class CreateTaskRequest(Msg):
    NAME = _t("CreateTaskRequest")
    FIELDS = ((1, "id", STRING), (2, "bundle", STRING), (3, "rootfs", Repeated(Mount)), (4, "terminal", BOOL),
              (5, "stdin", STRING), (6, "stdout", STRING), (7, "stderr", STRING), (8, "checkpoint", STRING),
              (9, "parent_checkpoint", STRING), (10, "options", Any))


class CreateTaskResponse(Msg):
    NAME = _t("CreateTaskResponse")
    FIELDS = ((1, "pid", UINT32),)


class _IdExec(Msg):
    FIELDS = ((1, "id", STRING), (2, "exec_id", STRING))


class _Id(Msg):
    FIELDS = ((1, "id", STRING),)


class StartRequest(_IdExec):
    NAME = _t("StartRequest")


class StartResponse(Msg):
    NAME = _t("StartResponse")
    FIELDS = ((1, "pid", UINT32),)


class DeleteRequest(_IdExec):
    NAME = _t("DeleteRequest")


class DeleteResponse(Msg):
    NAME = _t("DeleteResponse")
    FIELDS = ((1, "pid", UINT32), (2, "exit_status", UINT32), (3, "exited_at", Timestamp))


class ExecProcessRequest(Msg):
    NAME = _t("ExecProcessRequest")
    FIELDS = ((1, "id", STRING), (2, "exec_id", STRING), (3, "terminal", BOOL), (4, "stdin", STRING),
              (5, "stdout", STRING), (6, "stderr", STRING), (7, "spec", Any))


class ResizePtyRequest(Msg):
    NAME = _t("ResizePtyRequest")
    FIELDS = ((1, "id", STRING), (2, "exec_id", STRING), (3, "width", UINT32), (4, "height", UINT32))


class StateRequest(_IdExec):
    NAME = _t("StateRequest")


class StateResponse(Msg):
    NAME = _t("StateResponse")
    FIELDS = ((1, "id", STRING), (2, "bundle", STRING), (3, "pid", UINT32), (4, "status", ENUM),
              (5, "stdin", STRING), (6, "stdout", STRING), (7, "stderr", STRING), (8, "terminal", BOOL),
              (9, "exit_status", UINT32), (10, "exited_at", Timestamp), (11, "exec_id", STRING))


class KillRequest(Msg):
    NAME = _t("KillRequest")
    FIELDS = ((1, "id", STRING), (2, "exec_id", STRING), (3, "signal", UINT32), (4, "all", BOOL))


class CloseIORequest(Msg):
    NAME = _t("CloseIORequest")
    FIELDS = ((1, "id", STRING), (2, "exec_id", STRING), (3, "stdin", BOOL))


class PidsRequest(_Id):
    NAME = _t("PidsRequest")


class PidsResponse(Msg):
    NAME = _t("PidsResponse")
    FIELDS = ((1, "processes", Repeated(ProcessInfo)),)


class CheckpointTaskRequest(Msg):
    NAME = _t("CheckpointTaskRequest")
    FIELDS = ((1, "id", STRING), (2, "path", STRING), (3, "options", Any))


class UpdateTaskRequest(Msg):
    NAME = _t("UpdateTaskRequest")
    FIELDS = ((1, "id", STRING), (2, "resources", Any), (3, "annotations", Map(STRING, STRING)))


class ShutdownRequest(Msg):
    NAME = _t("ShutdownRequest")
    FIELDS = ((1, "id", STRING), (2, "now", BOOL))


class WaitRequest(_IdExec):
    NAME = _t("WaitRequest")


class WaitResponse(Msg):
    NAME = _t("WaitResponse")
    FIELDS = ((1, "exit_status", UINT32), (2, "exited_at", Timestamp))


class StatsRequest(_Id):
    NAME = _t("StatsRequest")


class StatsResponse(Msg):
    NAME = _t("StatsResponse")
    FIELDS = ((1, "stats", Any),)


class ConnectRequest(_Id):
    NAME = _t("ConnectRequest")


class ConnectResponse(Msg):
    NAME = _t("ConnectResponse")
    FIELDS = ((1, "shim_pid", UINT32), (2, "task_pid", UINT32), (3, "version", STRING))


class PauseRequest(_Id):
    NAME = _t("PauseRequest")


class ResumeRequest(_Id):
    NAME = _t("ResumeRequest")


# Request and response type of every Task method ("Empty" responses encode to b"").
TASK_METHODS = {
    "State": (StateRequest, StateResponse), "Create": (CreateTaskRequest, CreateTaskResponse),
    "Start": (StartRequest, StartResponse), "Delete": (DeleteRequest, DeleteResponse),
    "Pids": (PidsRequest, PidsResponse), "Pause": (PauseRequest, Empty), "Resume": (ResumeRequest, Empty),
    "Checkpoint": (CheckpointTaskRequest, Empty), "Kill": (KillRequest, Empty), "Exec": (ExecProcessRequest, Empty),
    "ResizePty": (ResizePtyRequest, Empty), "CloseIO": (CloseIORequest, Empty), "Update": (UpdateTaskRequest, Empty),
    "Wait": (WaitRequest, WaitResponse), "Stats": (StatsRequest, StatsResponse),
    "Connect": (ConnectRequest, ConnectResponse), "Shutdown": (ShutdownRequest, Empty),
}

# --- containerd.events ----------------------------------------------------------------------------------------------


class TaskIO(Msg):
    NAME = "containerd.events.TaskIO"
    FIELDS = ((1, "stdin", STRING), (2, "stdout", STRING), (3, "stderr", STRING), (4, "terminal", BOOL))


class TaskCreate(Msg):
    NAME = "containerd.events.TaskCreate"
    FIELDS = ((1, "container_id", STRING), (2, "bundle", STRING), (3, "rootfs", Repeated(Mount)), (4, "io", TaskIO),
              (5, "checkpoint", STRING), (6, "pid", UINT32))


class TaskStart(Msg):
    NAME = "containerd.events.TaskStart"
    FIELDS = ((1, "container_id", STRING), (2, "pid", UINT32))


class TaskDelete(Msg):
    NAME = "containerd.events.TaskDelete"
    FIELDS = ((1, "container_id", STRING), (2, "pid", UINT32), (3, "exit_status", UINT32),
              (4, "exited_at", Timestamp), (5, "id", STRING))


class TaskExit(Msg):
    NAME = "containerd.events.TaskExit"
    FIELDS = ((1, "container_id", STRING), (2, "id", STRING), (3, "pid", UINT32), (4, "exit_status", UINT32),
              (5, "exited_at", Timestamp))


class TaskOOM(Msg):
    NAME = "containerd.events.TaskOOM"
    FIELDS = ((1, "container_id", STRING),)


class TaskExecAdded(Msg):
    NAME = "containerd.events.TaskExecAdded"
    FIELDS = ((1, "container_id", STRING), (2, "exec_id", STRING))


class TaskExecStarted(Msg):
    NAME = "containerd.events.TaskExecStarted"
    FIELDS = ((1, "container_id", STRING), (2, "exec_id", STRING), (3, "pid", UINT32))


class TaskPaused(Msg):
    NAME = "containerd.events.TaskPaused"
    FIELDS = ((1, "container_id", STRING),)


class TaskResumed(Msg):
    NAME = "containerd.events.TaskResumed"
    FIELDS = ((1, "container_id", STRING),)


class TaskCheckpointed(Msg):
    NAME = "containerd.events.TaskCheckpointed"
    FIELDS = ((1, "container_id", STRING), (2, "checkpoint", STRING))


TOPICS = {
    TaskCreate: "/tasks/create", TaskStart: "/tasks/start", TaskExit: "/tasks/exit", TaskDelete: "/tasks/delete",
    TaskExecAdded: "/tasks/exec-added", TaskExecStarted: "/tasks/exec-started", TaskPaused: "/tasks/paused",
    TaskResumed: "/tasks/resumed", TaskCheckpointed: "/tasks/checkpointed", TaskOOM: "/tasks/oom",
}

EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"


class Envelope(Msg):
    """containerd.services.events.v1.Envelope (the ttrpc package declares an identical Envelope)."""
    NAME = "containerd.services.events.v1.Envelope"
    FIELDS = ((1, "timestamp", Timestamp), (2, "namespace", STRING), (3, "topic", STRING), (4, "event", Any))


class TtrpcEnvelope(Msg):
    NAME = "containerd.services.events.ttrpc.v1.Envelope"
    FIELDS = Envelope.FIELDS


class ForwardRequest(Msg):
    """The request of Events/Forward on containerd's ttrpc socket (TTRPC_ADDRESS)."""
    NAME = "containerd.services.events.ttrpc.v1.ForwardRequest"
    FIELDS = ((1, "envelope", TtrpcEnvelope),)


# --- runtime options ------------------------------------------------------------------------------------------------


class RuncOptions(Msg):
    NAME = "containerd.runc.v1.Options"
    FIELDS = ((1, "no_pivot_root", BOOL), (2, "no_new_keyring", BOOL), (3, "shim_cgroup", STRING),
              (4, "io_uid", UINT32), (5, "io_gid", UINT32), (6, "binary_name", STRING), (7, "root", STRING),
              (8, "criu_path", STRING), (9, "systemd_cgroup", BOOL), (10, "criu_image_path", STRING),
              (11, "criu_work_path", STRING))


class ProcessDetails(Msg):
    NAME = "containerd.runc.v1.ProcessDetails"
    FIELDS = ((1, "exec_id", STRING),)


class RuntimeOptions(Msg):
    NAME = "runtimeoptions.v1.Options"
    FIELDS = ((1, "type_url", STRING), (2, "config_path", STRING))


def _all_messages():
    from . import api_cgroups

    return {c.NAME: c for c in list(globals().values()) + list(vars(api_cgroups).values()) + [Any, Empty, Timestamp]
            if isinstance(c, type) and issubclass(c, Msg) and c.NAME}


def __getattr__(name):
    """The cgroups Metrics messages (api_cgroups.py) by name, and REGISTRY ({full proto name: class} for every
    message, e.g. for wire.unpack(any, REGISTRY)), both made on first use."""
    if name == "REGISTRY":
        globals()["REGISTRY"] = reg = _all_messages()
        return reg
    if name.startswith(("V1", "V2")):
        from . import api_cgroups

        if hasattr(api_cgroups, name):
            return getattr(api_cgroups, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
