"""Prometheus configuration check (§10): real promtool, and the structural fallback without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from k3smig_lib.errors import AppCheckError
from k3smig_lib.tools.promtool import prometheus_check

# --- Prometheus -------------------------------------------------------------------------------------

VALID = """
global:
  scrape_interval: 30s
  evaluation_interval: 1m
rule_files: [/etc/config/alerting_rules.yml]
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["localhost:9090"]}]
  - job_name: kubernetes-nodes
    scheme: https
    scrape_interval: 1m
    scrape_timeout: 20s
    static_configs: [{targets: ["10.0.0.1:10250"], labels: {role: node}}]
"""
BROKEN = {
    "bad duration": "global:\n  scrape_interval: banana\n",
    "misspelled top-level key": "scrape_config:\n  - job_name: a\n",
    "duplicate job": "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
    "timeout above interval": "scrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n"
                              "    scrape_timeout: 15s\n",
    "targets not a list": "scrape_configs:\n  - job_name: a\n"
                          "    static_configs: [{targets: localhost:9090}]\n",
    "not yaml": "scrape_configs: [\n",
}


def _no_promtool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def _promtool_present() -> None:
    assert shutil.which("promtool"), "promtool is required: install the Debian package prometheus"


def test_promtool_accepts_a_valid_configuration(tmp_path: Path) -> None:
    _promtool_present()
    (tmp_path / "prometheus.yml").write_text(VALID)
    result = prometheus_check(tmp_path / "prometheus.yml")
    assert result.tool == "promtool"
    # rule_files points at a file that does not exist here: promtool must say so, not pass silently
    assert not result.ok and "alerting_rules.yml" in result.output
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "prometheus.yml").write_text(VALID.replace("/etc/config/alerting_rules.yml", "rules.yml"))
    result = prometheus_check(tmp_path / "prometheus.yml")
    assert (result.tool, result.ok) == ("promtool", True), result.output
    assert "SUCCESS" in result.output


@pytest.mark.parametrize("case", list(BROKEN))
def test_promtool_and_the_structural_fallback_both_reject_broken_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    _promtool_present()
    config = tmp_path / "prometheus.yml"
    config.write_text(BROKEN[case])

    real = prometheus_check(config)
    _no_promtool(monkeypatch, tmp_path)
    fallback = prometheus_check(config)

    assert (real.tool, real.ok) == ("promtool", False), real.output
    assert (fallback.tool, fallback.ok) == ("structural", False)
    with pytest.raises(AppCheckError, match=r"Prometheus configuration check \(structural\) failed"):
        fallback.raise_if_failed()


def test_structural_fallback_passes_a_valid_config_and_says_promtool_was_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_promtool(monkeypatch, tmp_path)
    (tmp_path / "prometheus.yml").write_text(VALID)
    result = prometheus_check(tmp_path / "prometheus.yml")
    assert (result.tool, result.ok, result.output) == ("structural", True, "no problems found")
    assert result.note.startswith("promtool was not found on PATH")


def test_structural_fallback_names_each_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_promtool(monkeypatch, tmp_path)
    (tmp_path / "p.yml").write_text(BROKEN["timeout above interval"] + "  - job_name: a\n")
    assert prometheus_check(tmp_path / "p.yml").output.splitlines() == [
        "a: scrape timeout greater than scrape interval",
        "found multiple scrape configs with job name 'a'",
    ]


def test_a_promtool_built_without_kubernetes_discovery_falls_back_and_says_so(tmp_path: Path, monkeypatch) -> None:
    # Debian's prometheus package builds promtool without the Kubernetes service discovery; the bundled
    # example's configuration uses it, as most in-cluster configurations do.
    debian = Path("/usr/bin/promtool")
    assert debian.is_file(), "install Debian's prometheus package (scripts/install-system-deps.sh)"
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global: {scrape_interval: 30s}\nscrape_configs:\n"
                   "  - job_name: pods\n    kubernetes_sd_configs: [{role: pod}]\n")
    monkeypatch.setenv("PATH", str(debian.parent))
    check = prometheus_check(cfg)
    assert (check.tool, check.ok) == ("structural", True)
    assert "built without kubernetes_sd_configs" in check.note and "tools/build-promtool.sh" in check.note
