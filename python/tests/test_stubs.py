"""The type stubs (saedb/_saedb.pyi) describe the module as it is: every stubbed class, method
and function exists, with the parameters the extension really takes."""

import ast
import inspect
from pathlib import Path

import saedb
from saedb import _saedb

STUB = Path(saedb.__file__).with_name("_saedb.pyi")


def stub_params(fn: ast.FunctionDef):
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args] + [p.arg for p in a.kwonlyargs]
    return [n for n in names if n != "self"]


def runtime_params(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [n for n, p in sig.parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"]


def test_stubs_match_the_module():
    tree = ast.parse(STUB.read_text())
    checked = 0
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            obj = getattr(_saedb, node.name)
            assert runtime_params(obj) == stub_params(node), node.name
            checked += 1
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_saedb, node.name)
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                assert hasattr(cls, item.name), f"{node.name}.{item.name}"
                is_property = any(isinstance(d, ast.Name) and d.id == "property"
                                  for d in item.decorator_list)
                params = None if is_property else runtime_params(getattr(cls, item.name))
                if params is not None and not item.name.startswith("__"):
                    assert params == stub_params(item), f"{node.name}.{item.name}"
                    checked += 1
    assert checked >= 20
    assert sorted(saedb.__all__) == sorted(
        n for n in ("open", "Database", "Result", "Error", "QueryError", "StoreLocked",
                    "InputError", "FORMAT_VERSION", "__version__", "models_dir"))
