"""Quiet, deterministic access to TensorFlow and to C libraries that print on fd 1/2."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured_fds(*fds: int) -> Iterator[list[str]]:
    """Redirect OS-level file descriptors (not just sys.stdout) into a buffer.

    C++ code in TensorFlow and TFLM writes straight to fd 1/2, which Python's
    redirect_stdout cannot catch. The captured text is appended to the yielded list
    when the block ends.
    """
    fds = fds or (1, 2)
    out: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(fd) for fd in fds]
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, s in zip(fds, saved):
                os.dup2(s, fd)
                os.close(s)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace"))


def tensorflow():
    """Import TensorFlow with its C++ logging off and oneDNN's nondeterministic paths disabled."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" not in sys.modules:
        with captured_fds(2):
            import tensorflow  # noqa: F401
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def seed_everything(seed: int) -> None:
    """Fix every random source training touches, so a run can be repeated exactly."""
    tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    # Seeds alone do not make two runs equal: multi-threaded reductions (bias gradients,
    # batch-norm statistics) sum in whatever order the threads finish.
    tf = tensorflow()
    tf.config.experimental.enable_op_determinism()
