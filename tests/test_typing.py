"""The public API (`neurofabric.__all__`) is fully annotated, its hints resolve, and the wheel says so (PEP 561)."""

import inspect
import subprocess
import sys
import typing
import zipfile
from pathlib import Path

import pytest

import neurofabric

ROOT = Path(__file__).resolve().parents[1]

#: Dunder methods a user calls through syntax (`with`, `len`); the rest a dataclass writes itself.
PROTOCOL_DUNDERS = {"__init__", "__enter__", "__exit__", "__len__", "__call__", "__iter__", "__getitem__"}


def public_callables(obj):
    """`(label, function, skip_first)` for a public function, or for every public method,
    property getter, static and class method and `__init__` of a class and of its
    neurofabric base classes (builtin bases such as `Exception` and `dict` are not ours)."""
    if inspect.isfunction(obj):
        yield obj.__qualname__, obj, False
        return
    seen = set()
    for klass in obj.__mro__:
        if not klass.__module__.startswith("neurofabric."):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") and name not in PROTOCOL_DUNDERS:
                continue
            if isinstance(attr, staticmethod):
                func, skip_first = attr.__func__, False
            elif isinstance(attr, classmethod):
                func, skip_first = attr.__func__, True
            elif isinstance(attr, property):
                func, skip_first = attr.fget, True
            elif inspect.isfunction(attr):
                func, skip_first = attr, True
            else:
                continue
            if func is None or func in seen:
                continue
            seen.add(func)
            yield f"{klass.__name__}.{name}", func, skip_first


def missing_hints(label, func, skip_first):
    """What `func` lacks: a hint on a parameter (self/cls aside; *args and **kwargs may go
    without) or a return hint. Every hint is resolved, so one that names something
    undefined raises here."""
    hints = typing.get_type_hints(func)
    params = list(inspect.signature(func).parameters.values())
    if skip_first:
        params = params[1:]
    missing = [f"{label}({p.name})" for p in params
               if p.name not in hints and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if "return" not in hints:
        missing.append(f"{label} -> ?")
    return missing


def api_objects():
    return [(name, getattr(neurofabric, name)) for name in neurofabric.__all__
            if inspect.isfunction(getattr(neurofabric, name)) or inspect.isclass(getattr(neurofabric, name))]


@pytest.mark.parametrize("name, obj", api_objects(), ids=[name for name, _ in api_objects()])
def test_public_api_is_fully_annotated(name, obj):
    missing = []
    for label, func, skip_first in public_callables(obj):
        missing += missing_hints(label, func, skip_first)
    assert not missing, f"{name}: no type hint on " + ", ".join(missing)


def test_the_walk_reaches_methods_properties_classmethods_and_inherited_ones():
    labels = {label for label, _, _ in public_callables(neurofabric.GoldenDevice)}
    # Inherited from the abstract Device, overridden, and the context manager.
    assert {"Device.run", "Device.load", "GoldenDevice.read_weights", "Device.__enter__",
            "GoldenDevice.__init__"} <= labels
    network_labels = {label for label, _, _ in public_callables(neurofabric.Network)}
    assert {"Network.n", "Network.from_arrays", "Network.array_fields", "Network.__init__"} <= network_labels
    # Builtin bases contribute nothing (dict's methods are not ours to annotate).
    report_labels = {label for label, _, _ in public_callables(neurofabric.QuantisationReport)}
    assert report_labels == {"QuantisationReport.to_json", "QuantisationReport.from_json",
                             "QuantisationReport.lines"}


def test_the_check_finds_a_missing_parameter_hint_a_missing_return_and_an_undefined_name():
    def no_param_hint(network, steps: int) -> None:
        """Unannotated `network`."""

    def no_return_hint(steps: int):
        """No return hint."""

    def undefined_name(steps: "NoSuchType") -> int:  # noqa: F821 - the point of the test
        """A hint naming nothing."""

    def var_args_may_go_bare(*args, **kwargs) -> None:
        """*args and **kwargs need no hint."""

    assert missing_hints("f", no_param_hint, False) == ["f(network)"]
    assert missing_hints("f", no_return_hint, False) == ["f -> ?"]
    assert missing_hints("f", var_args_may_go_bare, False) == []
    with pytest.raises(NameError, match="NoSuchType"):
        missing_hints("f", undefined_name, False)


def test_removing_a_hint_from_the_api_is_caught(monkeypatch):
    run = neurofabric.Device.run
    bare = type(run)(run.__code__, run.__globals__, run.__name__, run.__defaults__, run.__closure__)
    bare.__kwdefaults__ = run.__kwdefaults__
    bare.__annotations__ = {k: v for k, v in run.__annotations__.items() if k != "steps"}
    monkeypatch.setattr(neurofabric.Device, "run", bare)
    missing = [m for label, func, skip in public_callables(neurofabric.GoldenDevice)
               for m in missing_hints(label, func, skip)]
    assert missing == ["Device.run(steps)"]


def test_the_package_carries_the_py_typed_marker():
    assert (Path(neurofabric.__file__).parent / "py.typed").is_file()


def test_the_wheel_ships_py_typed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("neurofabric-*.whl"))).namelist())
    assert "neurofabric/py.typed" in names
