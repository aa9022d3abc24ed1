"""One memo helper: every module-level cache is a Memo or a memoized function, and clear_all
forgets them all."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import planner
from planner.engine import catalog, memo, replica_checks
from planner.engine.memo import Memo, clear_all, memoized

PACKAGE = Path(planner.__file__).parent


def test_a_bounded_memo_drops_the_least_recently_used():
    cache: Memo[str, int] = Memo(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # used: "b" is now the oldest
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    unbounded: Memo[int, int] = Memo()
    for i in range(1000):
        unbounded.put(i, i)
    assert len(unbounded) == 1000


def test_get_or_make_gives_every_thread_the_first_value_kept():
    cache: Memo[str, object] = Memo(4)
    made: list[object] = []
    start = threading.Barrier(4)

    def make() -> object:
        value = object()
        made.append(value)
        return value

    got: list[object] = []

    def worker() -> None:
        start.wait()
        got.append(cache.get_or_make("k", make))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(v) for v in got}) == 1 and got[0] in made
    before = len(made)
    assert cache.get_or_make("k", make) is got[0] and len(made) == before  # a hit makes nothing


def test_clear_all_forgets_every_cache():
    calls: list[int] = []

    @memoized(8)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    cache: Memo[str, int] = Memo()
    cache.put("x", 1)
    square(3)
    gpus = catalog.gpus()
    replica_checks._FLOORS.put(("p", ()), "floor")  # type: ignore[arg-type]
    clear_all()
    assert cache.get("x") is None and replica_checks._FLOORS.get(("p", ())) is None
    square(3)
    assert calls == [3, 3]
    assert catalog.gpus() is not gpus and catalog.gpus() == gpus  # read again, the same catalog


def _module_caches(path: Path) -> list[str]:
    """Module-level caches made any other way: functools caches, and empty dicts kept at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                name = ast.unparse(dec.func if isinstance(dec, ast.Call) else dec)
                if name.split(".")[-1] in ("lru_cache", "cache"):
                    found.append(f"{path.name}:{node.lineno} @{name}")
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        empty_dict = isinstance(value, ast.Dict) and not value.keys
        empty_call = (isinstance(value, ast.Call) and not value.args and not value.keywords
                      and ast.unparse(value.func).split(".")[-1] in ("dict", "OrderedDict"))
        if empty_dict or empty_call:
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node).split('=')[0].strip()}")
    return found


def test_every_module_level_cache_is_a_memo():
    others = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != Path(memo.__file__)
              for hit in _module_caches(path)]
    assert others == []
