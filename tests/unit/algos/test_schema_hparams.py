"""One source for each method key: the schema's per-algo key lists and algo enum match the algorithms."""

import pytest

from sempos import config
from sempos.algos import registry


def method_schema():
    return config.load_schema()["$defs"]["method"]


def per_algo_keys() -> dict[str, set[str]]:
    out = {}
    for rule in method_schema()["allOf"]:
        out[rule["if"]["properties"]["algo"]["const"]] = set(rule["then"]["propertyNames"]["enum"])
    return out


def test_algo_enum_is_the_registry():
    assert set(method_schema()["properties"]["algo"]["enum"]) == set(registry.ALGOS) == set(per_algo_keys())


@pytest.mark.parametrize("algo", sorted(registry.ALGOS))
def test_schema_keys_of_each_algo_are_its_hparams(algo):
    cls = registry.get(algo)
    assert cls.name == algo
    assert per_algo_keys()[algo] == set(cls.HPARAMS) | config.COMMON_METHOD_KEYS
    assert set(cls.HPARAMS) <= set(method_schema()["properties"])  # every key also has a type
    # The defaults themselves are valid values of the schema.
    p = config.deep_merge(config.load_params(config.REPO_ROOT / "params.yaml"), {})
    p["methods"] = {"m": {"algo": algo, **cls.HPARAMS}}
    p["report"] = {}
    p["eval"]["detection"]["methods"] = []
    p["eval"]["semisup"]["methods"] = []
    config.validate(p)


def test_validation_imports_no_algorithm():
    import subprocess
    import sys

    code = ("import sys; from sempos.config import load_params; load_params('params.yaml'); "
            "print(sorted(m for m in sys.modules if m.startswith('sempos.algos')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=config.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
