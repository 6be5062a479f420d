from pathlib import Path

import pytest

from k3smig_lib.errors import ParameterError
from k3smig_lib.phases.catalog import PHASES
from k3smig_lib.runbook.runner import NOTEBOOKS, select_phases, split_parameters

ROOT = Path(__file__).resolve().parents[3]


def test_phase_ranges_select_in_order():
    assert select_phases("30-60") == ["30_inventory_source", "40_export_manifests", "50_migrate_secrets",
                                      "60_deploy_applications"]
    assert select_phases("90,00") == ["00_preflight", "90_validate_migration"]
    assert select_phases(None) == list(PHASES)


@pytest.mark.parametrize("spec", ["abc", "95-99", "3x"])
def test_bad_phase_ranges_are_explained(spec):
    with pytest.raises(ParameterError, match="--phases"):
        select_phases(spec)


def test_each_notebook_receives_only_the_parameters_it_declares():
    notebooks = {p: NOTEBOOKS / f"{p}.ipynb" for p in PHASES}
    split = split_parameters({"environment": "ci", "vm_name": "k3s-a", "age_recipient": "auto"}, notebooks)
    assert split["10_provision_infrastructure"] == {"environment": "ci", "vm_name": "k3s-a"}
    assert split["30_inventory_source"] == {"environment": "ci"}
    assert split["50_migrate_secrets"] == {"environment": "ci", "age_recipient": "auto"}


def test_a_parameter_no_notebook_declares_is_refused():
    notebooks = {p: NOTEBOOKS / f"{p}.ipynb" for p in ("30_inventory_source", "40_export_manifests")}
    with pytest.raises(ParameterError, match="'vm_name' is declared by no phase notebook"):
        split_parameters({"vm_name": "k3s-a"}, notebooks)


@pytest.mark.parametrize("params_file", sorted((ROOT / "parameters").glob("*.yaml")), ids=lambda p: p.name)
def test_every_parameters_file_matches_the_notebooks(params_file):
    from k3smig_lib.core.config import read_parameters_file

    notebooks = {p: NOTEBOOKS / f"{p}.ipynb" for p in PHASES}
    split_parameters(read_parameters_file(params_file), notebooks)
