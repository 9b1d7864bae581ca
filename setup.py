"""Package layout that pyproject.toml cannot say: models/ installs as `condanon.bundled_models`."""

from setuptools import find_packages, setup

setup(
    packages=find_packages("src") + ["condanon.bundled_models"],
    package_dir={"": "src", "condanon.bundled_models": "models"},
)
