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


def test_every_unknown_parameter_is_named_at_once_with_its_fix():
    with pytest.raises(ParameterError) as exc:
        check_parameters({"enviroment": "x", "apply": False, "zzz_unheard": 1})
    text = str(exc.value)
    assert "2 unknown parameters" in text and "rename 'enviroment' to 'environment'" in text
    assert "remove 'zzz_unheard'" in text


def test_a_secret_looking_parameter_is_refused_before_unknown_ones_are_listed():
    with pytest.raises(ParameterError, match="looks like a secret"):
        check_parameters({"zzz_unheard": 1, "db_password": "x"})


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


TOKENS = {
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "gitlab": "glpat-xYz12345678901234567",
    "slack webhook": "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "scaleway access key": "SCWABCDEFGHJKMNPQRST",
    "scaleway secret key": "6c9a3c1e-5f4b-4b8e-9d2a-1f0e7a3b2c4d",
}


@pytest.mark.parametrize("shape", sorted(TOKENS))
def test_token_shaped_values_are_refused_in_values_and_in_mapping_keys(shape):
    token = TOKENS[shape]
    for params, what in (({"domain": f"x{token}" if shape == "slack webhook" else token}, "the value"),
                         ({"registry_rewrites": {f"{token}@registry.example.com/": "rg.fr-par.scw.cloud/ns/"}},
                          "a key"),
                         ({"registry_rewrites": {"docker.io/": f"https://{token}@gitlab.example.com/"}}, "the value")):
        with pytest.raises(ParameterError) as err:
            check_parameters(params)
        text = str(err.value)
        assert text.startswith(f"{what} of parameter {next(iter(params))!r} looks like a secret"), text
        assert token not in text


def test_ordinary_registry_rewrites_pass():
    check_parameters({"registry_rewrites": {"docker.io/library/": "rg.fr-par.scw.cloud/shop/",
                                            "registry.gitlab.com/acme/": "rg.fr-par.scw.cloud/acme/"}})


def test_a_non_utf8_parameters_file_is_a_clear_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"environment: caf\xe9\n")
    with pytest.raises(ParameterError, match=r"parameters file .*p.yaml is not UTF-8: byte 0xe9 .*\(line 1\)"):
        read_parameters_file(path)


def test_duplicate_parameters_are_refused_with_the_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("environment: prod\napply: false\napply: true\n")
    with pytest.raises(ParameterError, match=r"p.yaml: line 3, column 1: duplicate key 'apply' \(first at line 2\)"):
        read_parameters_file(path)
