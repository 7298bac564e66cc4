"""`bus_runtime.iothread.SelectConnection` overrides pika's private `_output_marshaled_frames`
to write a burst of frames as one buffer. If pika changes that method, this fails loudly:
re-check the override against the new pika, then add the release to `TESTED_PIKA` and to the
pin in pyproject.toml."""

from __future__ import annotations

import inspect
import textwrap

import pika
import pika.connection

from bus_runtime.iothread import TESTED_PIKA, SelectConnection

# The body of pika 1.3.2's Connection._output_marshaled_frames, which the override replaces.
EXPECTED_BODY = """\
def _output_marshaled_frames(self, marshaled_frames):
    \"\"\"Output list of marshaled frames to buffer and update stats

    :param list marshaled_frames: A list of frames marshaled to bytes

    \"\"\"
    for marshaled_frame in marshaled_frames:
        self.bytes_sent += len(marshaled_frame)
        self.frames_sent += 1
        self._adapter_emit_data(marshaled_frame)
"""


def test_the_installed_pika_is_one_the_override_is_tested_with() -> None:
    assert pika.__version__ in TESTED_PIKA, (
        f"pika {pika.__version__} is not in bus_runtime.iothread.TESTED_PIKA {TESTED_PIKA}: "
        "check SelectConnection's override of the private _output_marshaled_frames against it"
    )


def test_pikas_private_hook_is_the_one_the_override_was_written_against() -> None:
    method = getattr(pika.connection.Connection, "_output_marshaled_frames", None)
    assert method is not None, "pika no longer has Connection._output_marshaled_frames: SelectConnection breaks"
    source = textwrap.dedent(inspect.getsource(method))
    assert source == EXPECTED_BODY, (
        "pika changed Connection._output_marshaled_frames; SelectConnection's override (bus_runtime/iothread.py) "
        f"must be re-checked. Now:\n{source}"
    )


class Recorder(SelectConnection):
    """The override alone, its transport replaced by a list (no socket, no I/O loop)."""

    def __init__(self) -> None:  # skip pika's connection set-up: only the frame path is tested
        self.bytes_sent = 0
        self.frames_sent = 0
        self.emitted: list[bytes] = []

    def _adapter_emit_data(self, data: bytes) -> None:
        self.emitted.append(data)

    @property
    def is_open(self) -> bool:
        return True


def test_corked_frames_go_out_as_one_buffer_with_the_same_bytes_and_counts() -> None:
    connection = Recorder()
    connection.cork()
    connection._output_marshaled_frames([b"a", b"bb"])
    connection._output_marshaled_frames([b"ccc"])
    assert connection.emitted == []
    connection.uncork()
    assert connection.emitted == [b"abbccc"]
    assert (connection.bytes_sent, connection.frames_sent) == (6, 3)
    connection._output_marshaled_frames([b"d", b"e"])  # uncorked: one buffer per call
    assert connection.emitted == [b"abbccc", b"de"] and connection.frames_sent == 5
