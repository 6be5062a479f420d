"""The ``grafana-data`` volume: ``grafana.db`` with dashboards and a folder, plugins, empty render dirs.

Grafana runs as uid/gid 472 and keeps its SQLite database at ``/var/lib/grafana/grafana.db``. The
``dashboard`` table has Grafana's columns (folders are rows with ``is_folder = 1``); ``data`` holds
the dashboard JSON, whose ``uid`` and ``version`` the data phase compares before and after.
"""

from __future__ import annotations

import json

from _gen import sqlitedb
from _gen.common import det_bytes, epoch
from _gen.sqlitedb import Row
from _gen.tarball import Tree

GRAFANA_UID = 472

SCHEMA = """
CREATE TABLE `migration_log` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `migration_id` TEXT NOT NULL,
  `sql` TEXT NOT NULL, `success` INTEGER NOT NULL, `error` TEXT NOT NULL, `timestamp` DATETIME NOT NULL);
CREATE TABLE `org` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `version` INTEGER NOT NULL,
  `name` TEXT NOT NULL, `address1` TEXT NULL, `address2` TEXT NULL, `city` TEXT NULL, `state` TEXT NULL,
  `zip_code` TEXT NULL, `country` TEXT NULL, `billing_email` TEXT NULL, `created` DATETIME NOT NULL,
  `updated` DATETIME NOT NULL);
CREATE UNIQUE INDEX `UQE_org_name` ON `org` (`name`);
CREATE TABLE `user` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `version` INTEGER NOT NULL,
  `login` TEXT NOT NULL, `email` TEXT NOT NULL, `name` TEXT NULL, `password` TEXT NULL, `salt` TEXT NULL,
  `rands` TEXT NULL, `company` TEXT NULL, `org_id` INTEGER NOT NULL, `is_admin` INTEGER NOT NULL,
  `email_verified` INTEGER NULL, `theme` TEXT NULL, `created` DATETIME NOT NULL, `updated` DATETIME NOT
  NULL,
  `help_flags1` INTEGER NOT NULL DEFAULT 0, `last_seen_at` DATETIME NULL, `is_disabled` INTEGER NOT NULL
  DEFAULT 0,
  `is_service_account` INTEGER DEFAULT 0, `uid` TEXT NULL);
CREATE UNIQUE INDEX `UQE_user_login` ON `user` (`login`);
CREATE UNIQUE INDEX `UQE_user_email` ON `user` (`email`);
CREATE TABLE `dashboard` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `version` INTEGER NOT NULL,
  `slug` TEXT NOT NULL, `title` TEXT NOT NULL, `data` TEXT NOT NULL, `org_id` INTEGER NOT NULL,
  `created` DATETIME NOT NULL, `updated` DATETIME NOT NULL, `updated_by` INTEGER NULL, `created_by`
  INTEGER NULL,
  `gnet_id` INTEGER NULL, `plugin_id` TEXT NULL, `folder_id` INTEGER NOT NULL DEFAULT 0,
  `is_folder` INTEGER NOT NULL DEFAULT 0, `has_acl` INTEGER NOT NULL DEFAULT 0, `uid` TEXT NULL,
  `is_public` INTEGER NOT NULL DEFAULT 0, `deleted` DATETIME NULL, `folder_uid` TEXT NULL);
CREATE INDEX `IDX_dashboard_org_id` ON `dashboard` (`org_id`);
CREATE UNIQUE INDEX `UQE_dashboard_org_id_uid` ON `dashboard` (`org_id`,`uid`);
CREATE TABLE `dashboard_version` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `dashboard_id` INTEGER
  NOT NULL,
  `parent_version` INTEGER NOT NULL, `restored_from` INTEGER NOT NULL, `version` INTEGER NOT NULL,
  `created` DATETIME NOT NULL, `created_by` INTEGER NOT NULL, `message` TEXT NOT NULL, `data` TEXT NOT
  NULL);
CREATE UNIQUE INDEX `UQE_dashboard_version_dashboard_id_version` ON `dashboard_version`
  (`dashboard_id`,`version`);
CREATE TABLE `folder` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `uid` TEXT NOT NULL, `org_id`
  INTEGER NOT NULL,
  `title` TEXT NOT NULL, `description` TEXT NULL, `parent_uid` TEXT NULL, `created` DATETIME NOT NULL,
  `updated` DATETIME NOT NULL);
CREATE UNIQUE INDEX `UQE_folder_org_id_uid` ON `folder` (`org_id`,`uid`);
CREATE TABLE `data_source` (`id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, `org_id` INTEGER NOT NULL,
  `version` INTEGER NOT NULL, `type` TEXT NOT NULL, `name` TEXT NOT NULL, `access` TEXT NOT NULL, `url`
  TEXT NOT NULL,
  `user` TEXT NOT NULL, `database` TEXT NOT NULL, `basic_auth` INTEGER NOT NULL, `is_default` INTEGER NOT
  NULL,
  `json_data` TEXT NULL, `created` DATETIME NOT NULL, `updated` DATETIME NOT NULL, `uid` TEXT NOT NULL
  DEFAULT 0,
  `read_only` INTEGER NULL);
"""

FOLDER = ("prod", "Production")
#: (uid, title, version, gnet_id)
DASHBOARDS = [
    ("k8s-cluster", "Kubernetes / Cluster", 7, None),
    ("node-exporter-full", "Node Exporter Full", 3, 1860),
    ("vaultwarden", "Vaultwarden", 4, None),
    ("loki-logs", "Loki / Logs", 2, 13639),
]


def _panel(n: int, title: str, expr: str, datasource: str) -> dict[str, object]:
    return {
        "id": n,
        "type": "timeseries",
        "title": title,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)},
        "datasource": {"type": datasource, "uid": datasource},
        "targets": [{"expr": expr, "refId": "A", "datasource": {"type": datasource, "uid": datasource}}],
    }


def dashboard_json(db_id: int, uid: str, title: str, version: int) -> str:
    """The dashboard model stored in ``dashboard.data``."""
    logs = uid == "loki-logs"
    source = "loki" if logs else "prometheus"
    exprs = [
        'sum(rate({namespace="vaultwarden"}[5m]))' if logs else "sum(rate(container_cpu_usage_seconds_total[5m]))",
        'count_over_time({app="grafana"}[1m])' if logs else "sum(container_memory_working_set_bytes)",
        'up{job="kubernetes-pods"}',
    ]
    model = {
        "annotations": {"list": []},
        "editable": True,
        "graphTooltip": 1,
        "id": db_id,
        "links": [],
        "panels": [_panel(n, f"{title} #{n + 1}", e, source) for n, e in enumerate(exprs)],
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["prod", source],
        "templating": {"list": []},
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": version,
    }
    return json.dumps(model, sort_keys=True)


def _stamp(day: int) -> str:
    return f"2024-06-{10 + day:02d} 09:{10 + day:02d}:3{day % 10}"


_MIGRATIONS = [
    "create migration_log table",
    "create user table",
    "create dashboard table",
    "create folder table",
    "create data_source table v2",
]


def _dashboard_rows() -> tuple[list[Row], list[Row]]:
    """Rows of ``dashboard`` (the folder first, then the dashboards) and of ``dashboard_version``."""
    folder_json = json.dumps({"title": FOLDER[1], "uid": FOLDER[0]})
    # fmt: off
    dashboards: list[Row] = [(1, 1, FOLDER[0], FOLDER[1], folder_json, 1, _stamp(0), _stamp(0), 1, 1, None, "", 0, 1, 0,
                              FOLDER[0], 0, None, None)]
    # fmt: on
    versions: list[Row] = []
    for i, (d_uid, title, version, gnet) in enumerate(DASHBOARDS, start=2):
        data = dashboard_json(i, d_uid, title, version)
        slug = title.lower().replace(" / ", "-").replace(" ", "-")
        # fmt: off
        dashboards.append((i, version, slug, title, data, 1, _stamp(i), _stamp(i + version), 1, 1, gnet, "", 1, 0, 0,
                           d_uid, 0, None, FOLDER[0]))
        versions += [(0, i, v, 0, v + 1, _stamp(i + v), 1, "" if v == 0 else f"update #{v}",
                      dashboard_json(i, d_uid, title, v + 1)) for v in range(version)]
        # fmt: on
    return dashboards, [(n + 1, *row[1:]) for n, row in enumerate(versions)]


def _rows() -> dict[str, list[Row]]:
    dashboards, versions = _dashboard_rows()
    password_hash = det_bytes("grafana-admin-password-hash", 50).hex()
    # fmt: off
    return {
        "migration_log": [(n + 1, m, "", 1, "", "2024-06-10 09:00:0" + str(n)) for n, m in enumerate(_MIGRATIONS)],
        "org": [(1, 0, "Main Org.", "", "", "", "", "", "", None, "2024-06-10 09:00:05", "2024-06-10 09:00:05")],
        "user": [(1, 0, "admin", "admin@localhost", "", password_hash, "hN3tWcQ2pZ", "x9KqL2fVbY", "", 1, 1, 0, "",
                  "2024-06-10 09:00:05", "2024-12-02 08:41:19", 0, "2025-01-20 09:51:07", 0, 0, "a1b2c3d4e5f6g7")],
        "dashboard": dashboards,
        "dashboard_version": versions,
        "folder": [(1, FOLDER[0], 1, FOLDER[1], "", None, _stamp(0), _stamp(0))],
        "data_source": [
            (1, 1, 1, "prometheus", "Prometheus", "proxy", "http://prometheus.monitoring.svc:9090", "", "", 0, 1,
             '{"httpMethod":"POST"}', _stamp(1), _stamp(1), "prometheus", 0),
            (2, 1, 1, "loki", "Loki", "proxy", "http://loki.monitoring.svc:3100", "", "", 0, 0, "{}", _stamp(1),
             _stamp(1), "loki", 0),
        ],
    }
    # fmt: on


def database() -> bytes:
    """The bytes of ``grafana.db``."""
    return sqlitedb.build(SCHEMA, _rows())


def tree() -> Tree:
    """The volume, owned by 472:472 (fsGroup keeps the root setgid)."""
    vol = Tree(uid=GRAFANA_UID, gid=GRAFANA_UID, mtime=epoch("2025-01-20T09:51:07Z"), root_mode=0o2775)
    vol.file("grafana.db", database(), mode=0o640)
    plugin = {"type": "panel", "name": "Clock", "id": "grafana-clock-panel", "info": {"version": "2.1.8"}}
    installed = epoch("2024-06-10T09:03:12Z")
    vol.file(
        "plugins/grafana-clock-panel/plugin.json",
        (json.dumps(plugin, indent=2) + "\n").encode(),
        mtime=installed,
    )
    vol.file(
        "plugins/grafana-clock-panel/module.js",
        b'define(["react","@grafana/data"],function(e,t){"use strict";return{}});\n',
        mtime=installed,
    )
    vol.file(
        "plugins/grafana-clock-panel/img/clock.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
        mtime=installed,
    )
    vol.dir("png")
    vol.dir("csv")
    vol.dir("pdf")
    return vol
