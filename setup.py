"""Build hook: ship the top-level ``catalog/`` and ``pipelines/`` folders inside the wheel.

They stay at the top of the repository as the source of truth; ``build_py`` copies their
YAML files into ``rsmiss/_data/`` of the build, where :mod:`rsmiss.resources` finds them
with ``importlib.resources``. Editable installs skip the copy and read the folders in place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA_FOLDERS = ("catalog", "pipelines")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA_FOLDERS:
            src = HERE / name
            dst = Path(self.build_lib) / "rsmiss" / "_data" / name
            if dst.exists():
                shutil.rmtree(dst)
            for f in sorted(src.rglob("*.yaml")):
                target = dst / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)


setup(cmdclass={"build_py": BuildPyWithData})
