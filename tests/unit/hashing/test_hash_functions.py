"""Function identity: normalised source, same-project dependencies, constants, cycles."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.hashing import FunctionIdentity, function_identity, hash_value
from scaleforge.hashing import functions as functions_module


class Project:
    """A throw-away package on disk whose modules a test writes, imports and reloads."""

    def __init__(self, root: Path) -> None:
        self.name = f"sfproj_{uuid.uuid4().hex[:10]}"
        self.dir = root / self.name
        self.dir.mkdir()
        (self.dir / "__init__.py").write_text("")
        self._tick = 0

    def write(self, module: str, source: str) -> None:
        path = self.dir / f"{module}.py"
        path.write_text(textwrap.dedent(source))
        # A fresh mtime each write so neither linecache nor the import system serves stale text.
        self._tick += 10
        stamp = 1_700_000_000 + self._tick
        os.utime(path, (stamp, stamp))

    def load(self, module: str) -> types.ModuleType:
        importlib.invalidate_caches()
        full = f"{self.name}.{module}"
        if full in sys.modules:
            return importlib.reload(sys.modules[full])
        return importlib.import_module(full)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    proj = Project(tmp_path)
    yield proj
    for name in [m for m in sys.modules if m == proj.name or m.startswith(proj.name + ".")]:
        del sys.modules[name]


def digest_of(fn: Callable[..., object]) -> str:
    return function_identity(fn).digest


def test_identity_fields() -> None:
    def area(r: float) -> float:
        return 3.0 * r * r

    ident = function_identity(area, version="7")
    assert isinstance(ident, FunctionIdentity)
    assert ident.module == __name__
    assert ident.qualname.endswith("area")
    assert ident.version == "7"
    assert len(ident.digest) == 32 and len(ident.source_digest) == 32
    assert ident.digest != function_identity(area).digest
    assert function_identity(area, version="7") == ident  # cached and equal
    with pytest.raises(InvalidParameterError, match="'version' parameter of function_identity"):
        function_identity(area, version=7)  # type: ignore[arg-type]


def test_reformatting_comments_and_docstrings_keep_the_digest(project: Project) -> None:
    project.write(
        "calc",
        """
        def f(x, y=2):
            '''Add things.'''
            z = x + y  # the sum
            return z * 2
        """,
    )
    before = function_identity(project.load("calc").f)
    project.write(
        "calc",
        '''
        import functools

        # a comment before


        @functools.lru_cache(maxsize=None)
        def f(x,
              y = 2):
            """A different docstring,
            over two lines."""

            # comment
            z = (x +
                 y)
            return (z*2)
        ''',
    )
    after = function_identity(project.load("calc").f)
    assert after.source_digest == before.source_digest
    assert after.digest == before.digest


def test_any_code_change_changes_the_digest(project: Project) -> None:
    project.write("calc", "def f(x, y=2):\n    return (x + y) * 2\n")
    base = digest_of(project.load("calc").f)
    variants = [
        "def f(x, y=3):\n    return (x + y) * 2\n",
        "def f(x, y=2):\n    return (x - y) * 2\n",
        "def f(x, y=2):\n    return (x + y) * 2.0\n",
        "def f(y, x=2):\n    return (y + x) * 2\n",
        "async def f(x, y=2):\n    return (x + y) * 2\n",
    ]
    seen = {base}
    for source in variants:
        project.write("calc", source)
        digest = digest_of(project.load("calc").f)
        assert digest not in seen, source
        seen.add(digest)


def test_editing_a_helper_module_invalidates_the_caller(project: Project) -> None:
    project.write("helpers", "def scale(x):\n    return 2 * x\n")
    project.write(
        "main",
        """
        from . import helpers

        def run(x):
            return helpers.scale(x) + 1
        """,
    )
    helpers = project.load("helpers")
    main = project.load("main")
    run = main.run
    before = function_identity(run)
    assert f"{project.name}.helpers.scale" in before.dependencies
    assert before.dependencies[f"{project.name}.helpers.scale"] == digest_of(helpers.scale)

    project.write("helpers", "def scale(x):\n    return 3 * x\n")
    project.load("helpers")  # reload the helper only: the caller's function object is unchanged
    after = function_identity(run)
    assert after.digest != before.digest
    assert after.source_digest == before.source_digest

    project.write("helpers", "def scale(x):\n    # reformatted, same code\n    return 3*x\n")
    project.load("helpers")
    assert digest_of(run) == after.digest


def test_editing_a_helper_imported_by_name(project: Project) -> None:
    project.write("helpers", "def inner(x):\n    return x + 1\n\ndef scale(x):\n    return inner(x) * 2\n")
    project.write("main", "from .helpers import scale\n\ndef run(x):\n    return [scale(v) for v in x]\n")
    project.load("helpers")
    before = digest_of(project.load("main").run)
    # A helper of the helper (reached through a comprehension's nested code object) changes.
    project.write("helpers", "def inner(x):\n    return x + 2\n\ndef scale(x):\n    return inner(x) * 2\n")
    project.load("helpers")
    after = digest_of(project.load("main").run)
    assert after != before


def test_editing_a_module_constant_changes_the_digest(project: Project) -> None:
    project.write(
        "consts", "FACTOR = 2.0\nTABLE = (1, 2, 3)\n\ndef f(x):\n    return FACTOR * x + TABLE[0]\n"
    )
    mod = project.load("consts")
    before = function_identity(mod.f)
    assert f"{project.name}.consts.FACTOR" in before.dependencies
    assert before.dependencies[f"{project.name}.consts.FACTOR"] == hash_value(2.0)
    project.write(
        "consts", "FACTOR = 3.0\nTABLE = (1, 2, 3)\n\ndef f(x):\n    return FACTOR * x + TABLE[0]\n"
    )
    mod = project.load("consts")
    assert digest_of(mod.f) != before.digest
    # Re-binding the constant at run time is seen too.
    current = digest_of(mod.f)
    mod.FACTOR = 4.0
    assert digest_of(mod.f) != current
    mod.FACTOR = 3.0
    assert digest_of(mod.f) == current


def test_module_level_array_constant(project: Project) -> None:
    project.write("arr", "import numpy as np\nW = np.arange(4.0)\n\ndef f(x):\n    return W @ x\n")
    mod = project.load("arr")
    before = digest_of(mod.f)
    mod.W = np.arange(4.0) * 2
    assert digest_of(mod.f) != before


def test_mutual_recursion_terminates_and_is_order_independent(project: Project) -> None:
    project.write(
        "rec",
        """
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)

        def is_odd(n):
            return False if n == 0 else is_even(n - 1)

        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        """,
    )
    mod = project.load("rec")
    even = function_identity(mod.is_even)
    odd = function_identity(mod.is_odd)
    assert even.digest != odd.digest
    assert f"{project.name}.rec.is_odd" in even.dependencies
    assert digest_of(mod.fact)  # self-recursion
    functions_module._NODES.clear()
    functions_module._IDENTITIES.clear()
    assert function_identity(mod.is_odd).digest == odd.digest  # other entry point first
    assert function_identity(mod.is_even).digest == even.digest
    project.write(
        "rec",
        """
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)

        def is_odd(n):
            return n != 0 and is_even(n - 1)

        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        """,
    )
    mod = project.load("rec")
    assert digest_of(mod.is_even) != even.digest


def test_functions_outside_the_project_are_not_dependencies(project: Project) -> None:
    project.write("uses", "import numpy as np\nimport os\n\ndef f(x):\n    return np.sum(x) + len(os.sep)\n")
    ident = function_identity(project.load("uses").f)
    assert dict(ident.dependencies) == {}


def test_classes_and_methods(project: Project) -> None:
    project.write(
        "model",
        """
        class Solver:
            tol = 1e-6

            def step(self, x):
                return x * 0.5

            def run(self, x):
                return self.step(x)

        def solve(x):
            return Solver().run(x)
        """,
    )
    mod = project.load("model")
    solve_before = digest_of(mod.solve)
    assert digest_of(mod.Solver().run) == digest_of(mod.Solver.run)  # bound method: the function
    project.write(
        "model",
        """
        class Solver:
            tol = 1e-6

            def step(self, x):
                return x * 0.25

            def run(self, x):
                return self.step(x)

        def solve(x):
            return Solver().run(x)
        """,
    )
    mod = project.load("model")
    assert digest_of(mod.solve) != solve_before  # a method of a class it uses changed


def test_closures_decorators_partials_and_builtins() -> None:
    def helper(x: int) -> int:
        return x + 1

    def make(fn: Callable[[int], int]) -> Callable[[int], int]:
        def inner(x: int) -> int:
            return fn(x) * 2

        return inner

    def other(x: int) -> int:
        return x + 2

    assert digest_of(make(helper)) != digest_of(make(other))
    assert digest_of(make(helper)) == digest_of(make(helper))

    def decorator(fn: Callable[[int], int]) -> Callable[[int], int]:
        @functools.wraps(fn)
        def wrapper(x: int) -> int:
            return fn(x)

        return wrapper

    assert digest_of(decorator(helper)) == digest_of(helper)
    assert digest_of(functools.partial(helper, 1)) != digest_of(functools.partial(helper, 2))
    assert digest_of(functools.partial(helper, 1)) != digest_of(helper)
    assert function_identity(len).qualname == "len"
    assert digest_of(len) != digest_of(abs)
    assert function_identity(np.sqrt).module == "numpy"
    with pytest.raises(InvalidParameterError, match="'fn' parameter of function_identity"):
        function_identity(3)


def test_no_source_falls_back_to_bytecode() -> None:
    namespace: dict[str, object] = {"__name__": "generated"}
    exec("def g(x):\n    return x + 1\n", namespace)  # no file: no source
    exec("def h(x):\n    return x + 2\n", namespace)
    g, h = namespace["g"], namespace["h"]
    assert callable(g) and callable(h)
    assert digest_of(g) != digest_of(h)
    namespace2: dict[str, object] = {"__name__": "generated"}
    exec("def g(x):\n    return x + 1\n", namespace2)
    g2 = namespace2["g"]
    assert callable(g2)
    assert digest_of(g) == digest_of(g2)


def test_lambdas() -> None:
    def first(x: int) -> int:
        return x + 1

    def second(x: int) -> int:
        return x + 2

    assert digest_of(first) != digest_of(second)
    one = lambda x: x + 1  # noqa: E731
    two = lambda x: x + 2  # noqa: E731
    assert digest_of(one) != digest_of(two)


def test_hash_value_of_functions_follows_identity(project: Project) -> None:
    project.write("cb", "def f(x):\n    return x\n")
    mod = project.load("cb")
    before = hash_value({"callback": mod.f})
    project.write("cb", "def f(x):\n    return -x\n")
    mod = project.load("cb")
    assert hash_value({"callback": mod.f}) != before
    assert hash_value(functools.partial(mod.f, 1)) != hash_value(functools.partial(mod.f, 2))
    assert hash_value(len) != hash_value(abs)
    assert hash_value(str.upper) != hash_value(str.lower)
    assert hash_value((1).__add__) != hash_value((2).__add__)


def test_code_object_swap_is_detected() -> None:
    def f(x: int) -> int:
        return x + 1

    def g(x: int) -> int:
        return x + 100

    before = digest_of(f)
    f.__code__ = g.__code__
    assert digest_of(f) != before


def test_identified_closures_can_be_garbage_collected() -> None:
    import gc
    import weakref

    def make(k: int) -> Callable[[int], int]:
        def rec(n: int) -> int:  # refers to itself through its closure
            return k if n <= 0 else rec(n - 1)

        return rec

    fn = make(3)
    assert fn(2) == 3
    assert digest_of(fn) == digest_of(fn)
    assert hash_value(fn) == hash_value(fn)
    ref = weakref.ref(fn)
    del fn
    gc.collect()
    assert ref() is None
