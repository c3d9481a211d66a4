"""Where an experiment's output goes: results/logs/NAME, beside the other logs that the docs link, and the terminal.

The scripts live here and their logs in results/logs/. Each committed log was once made by redirecting a script's
stdout there by hand; tee() writes it from the same print calls, so that no command needs the redirect or its path.
append=True adds a run to the end: several logs hold runs one after another (another backend, other flags).
"""

import sys
from pathlib import Path

LOGS = Path(__file__).resolve().parents[1] / "results" / "logs"


class tee:  # lower case: called as a function is, like contextlib.redirect_stdout
    """From here on, copy what this process prints to stdout into results/logs/NAME as well (overwritten, or added
    to with append); in a `with` block, until its end. Call it after the script's checks, so that a mistyped
    command leaves the committed log alone."""

    def __init__(self, name, append=False):
        self.terminal, self.path = sys.stdout, LOGS / name
        # line by line: a run cut short (a timeout, Ctrl-C) keeps what it printed; "\n" on every system, as committed
        self.log = open(self.path, "a" if append else "w", encoding="utf-8", newline="\n", buffering=1)
        sys.stdout = self

    def write(self, text):
        self.log.write(text)
        return self.terminal.write(text)

    def flush(self):
        self.log.flush()
        self.terminal.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding: the terminal's
        return getattr(self.terminal, name)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        sys.stdout = self.terminal
        self.log.close()
