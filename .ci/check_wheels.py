"""Do requirements-dev.txt's exact pins install from wheels on every Python and platform students use?

    python .ci/check_wheels.py            # all 16 targets, about a minute
    python .ci/check_wheels.py 3.14-win_amd64

For each target (Python 3.11, 3.12, 3.13, 3.14 x Linux x86_64, Linux aarch64,
macOS arm64, Windows amd64) pip resolves the whole requirement set with
`--only-binary=:all:` for that interpreter and platform, without installing
anything, environment markers included (TensorFlow up to 3.13, JAX on 3.14). A
pin with no wheel there (numpy 1.26.4 on 3.13, say) fails the check with one line
naming the target and the package. Needs the package index.

It runs pip from a throwaway virtual environment with a current pip: pip 25 and
newer read a wheel's metadata from the index instead of downloading the wheel
(TensorFlow's is 350 MB per target), so the check takes a minute, not 4 GB.
"""

import concurrent.futures
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-dev.txt"
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# pip matches --platform tags exactly, so Linux lists every manylinux glibc level up to Ubuntu 22.04's (2.35,
# Colab's); a macOS tag also admits the older macOS releases.
PLATFORMS = {
    "linux_x86_64": ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 36))],
    "linux_aarch64": ["manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 36))],
    "macos_arm64": ["macosx_14_0_arm64"],
    "win_amd64": ["win_amd64"],
}


def targets():
    return [f"{python}-{platform}" for python in PYTHONS for platform in PLATFORMS]


def requirements_for(python, path=REQUIREMENTS):
    """The requirements of `path` (and the files it includes with -r) that apply on Python `python`.

    pip evaluates environment markers for the Python it runs on, even with --python-version, so they are
    evaluated here for the target's.
    """
    from packaging.requirements import Requirement

    lines = []
    for line in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        if line.startswith("-r "):
            lines += requirements_for(python, path.parent / line[3:].strip())
        elif line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(
                    {"python_version": python, "python_full_version": f"{python}.0"}):
                lines.append(f"{requirement.name}{requirement.specifier}")
    return lines


def resolve(pip, target, workdir):
    """None when pip resolves every requirement from wheels for target, else a one-line reason."""
    python, platform = target.split("-", 1)
    abi = "cp" + python.replace(".", "")
    command = [*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--only-binary=:all:",
               "--python-version", python, "--implementation", "cp", "--abi", abi,
               *(f"--platform={tag}" for tag in PLATFORMS[platform]),
               "--target", str(Path(workdir) / target), *requirements_for(python)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    package = re.search(r"(?:satisfies the requirement|distribution found for) (\S+)", result.stderr)
    if package:
        return f"no wheel of {package.group(1)}"
    return errors[-1] if errors else result.stderr.strip().splitlines()[-1]


def main(argv):
    chosen = argv or targets()
    unknown = sorted(set(chosen) - set(targets()))
    if unknown:
        sys.exit(f"check_wheels.py: error: unknown target {unknown[0]}; choose from {', '.join(targets())}")
    with tempfile.TemporaryDirectory(prefix="check-wheels-") as workdir:
        environment = Path(workdir) / "venv"
        venv.create(environment, with_pip=True)
        python = environment / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25"], check=True)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            reasons = dict(zip(chosen, pool.map(lambda target: resolve(pip, target, workdir), chosen)))
    for target, reason in reasons.items():
        print(f"{'FAIL' if reason else 'ok  '} {target}" + (f": {reason}" if reason else ""))
    failed = [target for target, reason in reasons.items() if reason]
    if failed:
        print(f"check_wheels.py: {len(failed)} of {len(chosen)} targets cannot install {REQUIREMENTS.name} from "
              f"wheels: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(chosen)} targets install {REQUIREMENTS.name} from wheels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
