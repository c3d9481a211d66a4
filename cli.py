"""What the four scripts (train, evaluate, predict, bench) share as command-line programs.

- `OneLineErrorParser`: argparse whose errors are one line, exit 2, and whose --help shows every default.
- `UsageError` and `main()`: a script's run(args) under a filter of native log lines, with the project's errors
  (a bad flag value, a missing or damaged file) printed as one line naming the file or flag, exit 1, never a
  traceback.
- The filter itself: TensorFlow's C++ code writes start-up lines (CUDA probing, absl's notice) straight to file
  descriptor 2, before any log level applies. Importing this module chooses the Keras backend (backend.py) and
  imports its framework under that filter, so the scripts import it before anything that loads Keras; a student
  sees the sheet's output, not those lines. A backend that cannot be imported is one line and exit 1, here.
"""

import argparse
import contextlib
import os
import re
import sys
import threading

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


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own log level: warnings and info off
import backend  # noqa: E402  (chooses Keras's backend before anything imports keras)

if backend.problem():
    sys.exit(f"{os.path.basename(sys.argv[0])}: error: {backend.problem()}")
with native_log_filter():
    backend.import_framework()  # first, so that its start-up lines are filtered

import data  # noqa: E402
import persistence  # noqa: E402


class UsageError(ValueError):
    """A flag or path the user gave cannot work; the message says what to do."""


PROJECT_ERRORS = (UsageError, data.DataError, persistence.PairError, backend.BackendError)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose errors are one line (not usage + error), exit code 2; --help shows every default."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def markdown_table(header, rows):
    """A Markdown table: the header's cells, then one line per row."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in lines)


def main(script, run, args, on_interrupt="interrupted", after_os_error=""):
    """Exit code of run(args) for the script named `script` (train.py, ...), as students meet it.

    The project's errors, and an OSError such as a full disk (followed by `after_os_error`: what is kept),
    become one line on stderr and exit 1; Ctrl-C becomes `on_interrupt` (what is kept, what to do next).
    Nothing else is caught: a bug still shows its traceback.
    """
    with native_log_filter():
        try:
            return run(args)
        except PROJECT_ERRORS as error:
            sys.exit(f"{script}: error: {error}")
        except KeyboardInterrupt:
            sys.exit(f"{script}: {on_interrupt}")
        except OSError as error:  # a full disk, a results dir that vanished, ...
            where = f"{error.filename}: " if error.filename else ""
            sys.exit(f"{script}: error: {where}{error.strerror or error}{after_os_error}")

