"""The compiled apply path's extensions (deploy/native_build.py); everything else is in pyproject.toml."""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the checkout's reprise package: its build step

from reprise.deploy.native_build import COMMANDS, extensions  # noqa: E402

setup(ext_modules=extensions(), cmdclass=COMMANDS)
