"""What the scripts (train.py, evaluate.py, predict.py, and the tools here) share as command-line programs.

- `start(script)`: called first by a script run from the command line, never on import: TensorFlow's C++ code
  writes start-up lines (CUDA probing, absl's notice, CPU features) straight to file descriptor 2 as it loads,
  before any log level applies; start() loads the backend's framework with those lines filtered out, so that a
  student sees the sheet's output, and a backend that cannot be imported is one line and exit 1.
- `HelpParser`: argparse whose errors are one line, exit 2, and whose --help shows every default.
- `run(script, function, args)`: a script's work under that filter, with the project's errors (a bad flag value, a
  missing or damaged file: errors.py) printed as one line naming the file or flag, exit 1, never a traceback.
"""

import argparse
import contextlib
import os
import re
import sys
import threading

from labtools import backend
from labtools.errors import PROJECT_ERRORS

_NATIVE_LOG_LINE = re.compile(rb"^(?:[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl)")


@contextlib.contextmanager
def native_log_filter():
    """Drop TensorFlow's native log lines from stderr meanwhile; pass everything else through.

    Python's own warnings and errors still reach the terminal: only lines in the native log format go.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _NATIVE_LOG_LINE.match(line):
                    os.write(terminal, line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # the pipe loses its last writer: the thread reads to the end and stops
        thread.join(timeout=5)
        os.close(terminal)


def start(script):
    """For a script run from the command line, before it imports Keras: TensorFlow's own log level (warnings and
    info off), the backend's settings for training (backend.training_environment), oneDNN's CPU kernels where
    TensorFlow would leave them off (backend.use_onednn_kernels), then the framework imported
    with its native lines filtered out; a backend that cannot be imported is one line and exit 1."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    backend.training_environment()
    backend.use_onednn_kernels()  # where TensorFlow would leave its faster CPU kernels off; the first line says so
    if backend.unavailable():
        sys.exit(f"{script}: error: {backend.unavailable()}")
    with native_log_filter():
        backend.import_framework()


class HelpParser(argparse.ArgumentParser):
    """argparse whose errors are one line (not usage + error), exit code 2; --help shows every default that is set
    (a flag without a default says in its own words what happens without it)."""

    class Formatter(argparse.ArgumentDefaultsHelpFormatter):
        def _get_help_string(self, action):
            if action.default is None:
                return action.help
            return super()._get_help_string(action)

    def __init__(self, **kwargs):
        super().__init__(formatter_class=self.Formatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(script, function, args, on_interrupt="interrupted", after_os_error=""):
    """Exit code of function(args) for the script named `script` (train.py, ...), as students meet it.

    The project's errors, and an OSError such as a full disk (followed by `after_os_error`: what is kept),
    become one line on stderr and exit 1; Ctrl-C becomes `on_interrupt` (what is kept, what to do next).
    Nothing else is caught: a bug still shows its traceback.
    """
    with native_log_filter():
        try:
            return function(args)
        except PROJECT_ERRORS as error:
            sys.exit(f"{script}: error: {error}")
        except KeyboardInterrupt:
            sys.exit(f"{script}: {on_interrupt}")
        except OSError as error:  # a full disk, a results dir that vanished, ...
            where = f"{error.filename}: " if error.filename else ""
            sys.exit(f"{script}: error: {where}{error.strerror or error}{after_os_error}")
