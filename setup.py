"""Package discovery: every directory with an ``__init__.py`` below the root is a ``distplan.*`` package.

The repository root *is* the ``distplan`` package (``package_dir={"distplan": "."}``),
so a new ``planners/<kind>/`` ships in the wheel without editing a list. Metadata
lives in pyproject.toml.
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

NOT_PACKAGES = [
    "tests",
    "tests.*",
    "benchmarks",
    "benchmarks.*",
    "scripts",
    "scripts.*",
    "instances",
    "build",
    "build.*",
]


class BuildPy(build_py):
    """Leave this file out of the ``distplan`` package."""

    def find_package_modules(self, package, package_dir):  # type: ignore[no-untyped-def]
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "distplan" and m[1] == "setup")]


setup(
    package_dir={"distplan": "."},
    packages=[
        "distplan",
        *(f"distplan.{name}" for name in find_packages(where=".", exclude=NOT_PACKAGES)),
    ],
    cmdclass={"build_py": BuildPy},
)
