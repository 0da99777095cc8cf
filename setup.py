"""The one thing pyproject.toml does not declare: the match function's inner loop in C.

``matchmaker/_matchloop.c`` is optional: on a machine without a C compiler the package installs
without it and ``matchmaker.matching`` runs the same loop in Python (slower, same matches).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "matchmaker._matchloop",
            sources=["matchmaker/_matchloop.c"],
            optional=True,
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
