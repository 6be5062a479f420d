from pathlib import Path

import pytest
from pydantic import ValidationError

from k3smig_lib.core.config import BUNDLED_EXAMPLE, Settings, check_parameters, load, looks_secret, read_parameters_file
from k3smig_lib.errors import ParameterError

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_plan_only_with_the_bundled_example():
    cfg = load()
    assert cfg.apply is False and cfg.provision is False
    assert cfg.snapshot_path() == BUNDLED_EXAMPLE
    assert cfg.target_kind == "directory"


def test_misspelled_parameter_is_refused_with_the_right_name_in_the_fix():
    with pytest.raises(ParameterError, match=r"unknown parameter 'source_contxt'.*rename it to 'source_context'"):
        load(source_contxt="prod")


@pytest.mark.parametrize("name", ["db_password", "scw_secret_key", "api_token", "private_key_pem", "grafana_token"])
def test_secret_looking_parameter_names_are_refused(name):
    with pytest.raises(ParameterError, match="looks like a secret"):
        check_parameters({name: "x"})


@pytest.mark.parametrize(
    "value",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
        "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS",
        "SCWABCDEFGHJKMNPQRST",
        "glrt-t3_AbCdEfGhIjKlMnOpQrSt",
        "9f8e7d6c5b4a39281716a5b4c3d2e1f0a9b8c7d6",
    ],
)
def test_secret_looking_values_are_refused_without_echoing_them(value):
    with pytest.raises(ParameterError) as err:
        check_parameters({"source_context": value})
    assert value not in str(err.value)
    assert "looks like a secret" in str(err.value)


@pytest.mark.parametrize("value", ["fr-par-1", "/home/ops/.kube/config", "kapsule-prod", "rg.fr-par.scw.cloud",
                                   "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"])
def test_ordinary_values_are_not_mistaken_for_secrets(value):
    assert not looks_secret(value)


@pytest.mark.parametrize("ns", ["../x", "a;rm -rf /", "app\nname", "UPPER", ""])
def test_injected_namespaces_are_rejected(ns):
    with pytest.raises(ParameterError, match="namespaces"):
        load(namespaces=[ns])


def test_settings_are_frozen():
    cfg = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.apply = True  # type: ignore[misc]


@pytest.mark.parametrize("path", sorted((ROOT / "parameters").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_parameters_file_is_valid(path):
    params = read_parameters_file(path)
    Settings(**params)


def test_parameters_file_with_unknown_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("environment: prod\nsrc_ctx: x\n")
    with pytest.raises(ParameterError, match=r"unknown parameter 'src_ctx' in .*bad.yaml"):
        read_parameters_file(bad)


def test_parameters_file_that_is_not_a_mapping_is_explained(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ParameterError, match="must be a mapping"):
        read_parameters_file(bad)
