"""The one thing pyproject.toml does not declare: the match function's inner loops in C.

``matchmaker/_matchloop.c`` (the walk and selection) and ``matchmaker/_ratingloop.c`` (a rating
queue's team balance and prediction) are optional: on a machine without a C compiler the package
installs without them and ``matchmaker.matching`` / ``matchmaker.ratings`` run the same code in
Python (slower, same matches).
"""

from setuptools import Extension, setup

COMPILE_ARGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "matchmaker._matchloop",
            sources=["matchmaker/_matchloop.c"],
            optional=True,
            extra_compile_args=COMPILE_ARGS,
        ),
        Extension(
            "matchmaker._ratingloop",
            sources=["matchmaker/_ratingloop.c"],
            optional=True,
            extra_compile_args=COMPILE_ARGS,
        ),
    ]
)
