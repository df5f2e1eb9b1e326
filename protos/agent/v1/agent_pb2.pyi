from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogsRequest(_message.Message):
    __slots__ = ("namespace", "pod", "container", "follow", "tail_lines", "since_seconds", "previous", "timestamps")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    SINCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    container: str
    follow: bool
    tail_lines: int
    since_seconds: int
    previous: bool
    timestamps: bool
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., container: _Optional[str] = ..., follow: _Optional[bool] = ..., tail_lines: _Optional[int] = ..., since_seconds: _Optional[int] = ..., previous: _Optional[bool] = ..., timestamps: _Optional[bool] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExecStart(_message.Message):
    __slots__ = ("namespace", "pod", "container", "command", "stdin", "tty")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    container: str
    command: _containers.RepeatedScalarFieldContainer[str]
    stdin: bool
    tty: bool
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., container: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., stdin: _Optional[bool] = ..., tty: _Optional[bool] = ...) -> None: ...

class ExecInput(_message.Message):
    __slots__ = ("start", "stdin")
    START_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    start: ExecStart
    stdin: bytes
    def __init__(self, start: _Optional[_Union[ExecStart, _Mapping]] = ..., stdin: _Optional[bytes] = ...) -> None: ...

class ExecOutput(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exit_code: int
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_code: _Optional[int] = ...) -> None: ...

class ImageArchive(_message.Message):
    __slots__ = ("name", "size", "node")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    node: str
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class ImageChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ImportImageResult(_message.Message):
    __slots__ = ("node", "images")
    NODE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    node: str
    images: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ContainerUsage(_message.Message):
    __slots__ = ("namespace", "pod", "container", "cpu_usage_seconds_total", "cpu_millicores", "memory_working_set_bytes", "timestamp")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_SECONDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLICORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_WORKING_SET_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    container: str
    cpu_usage_seconds_total: float
    cpu_millicores: int
    memory_working_set_bytes: int
    timestamp: float
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., container: _Optional[str] = ..., cpu_usage_seconds_total: _Optional[float] = ..., cpu_millicores: _Optional[int] = ..., memory_working_set_bytes: _Optional[int] = ..., timestamp: _Optional[float] = ...) -> None: ...

class NodeUsage(_message.Message):
    __slots__ = ("cpu_usage_seconds_total", "cpu_millicores", "memory_used_bytes", "timestamp")
    CPU_USAGE_SECONDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLICORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    cpu_usage_seconds_total: float
    cpu_millicores: int
    memory_used_bytes: int
    timestamp: float
    def __init__(self, cpu_usage_seconds_total: _Optional[float] = ..., cpu_millicores: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., timestamp: _Optional[float] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("node", "containers", "window_seconds")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    node: NodeUsage
    containers: _containers.RepeatedCompositeFieldContainer[ContainerUsage]
    window_seconds: float
    def __init__(self, node: _Optional[_Union[NodeUsage, _Mapping]] = ..., containers: _Optional[_Iterable[_Union[ContainerUsage, _Mapping]]] = ..., window_seconds: _Optional[float] = ...) -> None: ...
