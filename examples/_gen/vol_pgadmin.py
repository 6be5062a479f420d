"""The ``pgadmin-data`` volume: ``pgadmin4.db`` (users, server definitions), sessions and user storage.

pgAdmin runs as uid/gid 5050 and creates its folders 0700 and its files 0600. The user's storage
folder holds SQL dumps and a relative ``latest.sql`` symlink to the newest one.
"""

from __future__ import annotations

from _gen import sqlitedb
from _gen.common import det_bytes, epoch, uid
from _gen.sqlitedb import Row
from _gen.tarball import Tree

PGADMIN_UID = 5050

SCHEMA = """
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY
  KEY (version_num));
CREATE TABLE version (name VARCHAR(32) NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (name));
CREATE TABLE role (id INTEGER NOT NULL, name VARCHAR(128) NOT NULL, description VARCHAR(256) NOT NULL,
  PRIMARY KEY (id), UNIQUE (name));
CREATE TABLE user (id INTEGER NOT NULL, username VARCHAR(256) NOT NULL, email VARCHAR(256), password
  VARCHAR(256),
  active BOOLEAN NOT NULL, confirmed_at DATETIME, masterpass_check VARCHAR(256), auth_source VARCHAR(16)
  NOT NULL
  DEFAULT 'internal', fs_unique_id VARCHAR(256) UNIQUE, locked BOOLEAN NOT NULL DEFAULT 0,
  login_attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id), UNIQUE (username, auth_source));
CREATE TABLE roles_users (user_id INTEGER, role_id INTEGER, FOREIGN KEY(user_id) REFERENCES user (id),
  FOREIGN KEY(role_id) REFERENCES role (id));
CREATE TABLE servergroup (id INTEGER NOT NULL, user_id INTEGER NOT NULL, name VARCHAR(128) NOT NULL,
  PRIMARY KEY (id), FOREIGN KEY(user_id) REFERENCES user (id), UNIQUE (user_id, name));
CREATE TABLE server (id INTEGER NOT NULL, user_id INTEGER NOT NULL, servergroup_id INTEGER NOT NULL,
  name VARCHAR(128) NOT NULL, host VARCHAR(128), port INTEGER, maintenance_db VARCHAR(64), username
  VARCHAR(64),
  password VARCHAR(64), save_password INTEGER NOT NULL DEFAULT 0, role TEXT, comment VARCHAR(1024),
  discovery_id VARCHAR(128), db_res TEXT, bgcolor TEXT, fgcolor TEXT, service TEXT, use_ssh_tunnel
  INTEGER DEFAULT 0,
  connection_params JSON, shared BOOLEAN NOT NULL DEFAULT 0, kerberos_conn INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (id), FOREIGN KEY(user_id) REFERENCES user (id), FOREIGN KEY(servergroup_id) REFERENCES
  servergroup (id));
CREATE TABLE setting (user_id INTEGER NOT NULL, setting VARCHAR(256) NOT NULL, value VARCHAR(1024),
  PRIMARY KEY (user_id, setting), FOREIGN KEY(user_id) REFERENCES user (id));
CREATE TABLE keys (name VARCHAR NOT NULL, value VARCHAR NOT NULL, PRIMARY KEY (name));
"""


def _rows() -> dict[str, list[Row]]:
    pw_hash = "$pbkdf2-sha512$25000$" + det_bytes("pga-salt", 16).hex() + "$" + det_bytes("pga-hash", 64).hex()
    params = '{"sslmode": "require", "connect_timeout": 10}'
    admin_fs, dba_fs = str(uid("pgadmin-fs", "admin")), str(uid("pgadmin-fs", "dba"))
    note = "Scaleway managed PostgreSQL via selectorless Service"
    # fmt: off
    return {
        "alembic_version": [("ec0f11f9a4e6",)],
        "version": [("ConfigDB", 39)],
        "role": [(1, "Administrator", "pgAdmin Administrator Role"), (2, "User", "pgAdmin User Role")],
        "user": [(1, "admin@example.org", "admin@example.org", pw_hash, 1, None, None, "internal", admin_fs, 0, 0),
                 (2, "dba@example.org", "dba@example.org", pw_hash[:-8] + "0f1e2d3c", 1, None, None, "internal",
                  dba_fs, 0, 0)],
        "roles_users": [(1, 1), (2, 2)],
        "servergroup": [(1, 1, "Servers"), (2, 2, "Servers")],
        "server": [(1, 1, 1, "prod-postgres (external)", "postgres-external.pgadmin.svc.cluster.local", 5432,
                    "postgres", "app_admin", None, 0, None, note, None, None, "#2e7d32", None, None, 0, params, 1, 0),
                   (2, 2, 2, "prod-postgres (direct)", "172.16.8.10", 5432, "app", "dba", None, 0, None, None, None,
                    None, None, None, None, 0, params, 0, 0)],
        "setting": [(1, "Browser/Width", "320"), (1, "SQLEditor/FontSize", "1.1"), (2, "Browser/Width", "280")],
        "keys": [("CSRF_SESSION_KEY", det_bytes("pga-csrf", 32).hex()), ("SECRET_KEY", det_bytes("pga-sk", 32).hex()),
                 ("SECURITY_PASSWORD_SALT", det_bytes("pga-psalt", 32).hex())],
    }
    # fmt: on


def database() -> bytes:
    """The bytes of ``pgadmin4.db``."""
    return sqlitedb.build(SCHEMA, _rows())


def tree() -> Tree:
    """The volume, owned by 5050:5050 with pgAdmin's private modes."""
    vol = Tree(
        uid=PGADMIN_UID,
        gid=PGADMIN_UID,
        mtime=epoch("2025-01-17T16:20:45Z"),
        root_mode=0o2770,
        dir_mode=0o700,
    )
    vol.file("pgadmin4.db", database(), mode=0o600)
    for n in range(3):
        vol.file(
            f"sessions/{uid('pga-session', str(n))}",
            b"\x80\x04\x95" + det_bytes(f"pga-session:{n}", 180),
            mode=0o600,
            mtime=epoch("2025-01-17T16:20:45Z") - 3600 * n,
        )
    dumps = "storage/admin_example.org/exports"
    vol.file(
        f"{dumps}/prod-2024-11-30.sql",
        _dump_sql("2024-11-30"),
        mode=0o600,
        mtime=epoch("2024-11-30T23:10:00Z"),
    )
    vol.file(
        f"{dumps}/prod-2024-12-31.sql",
        _dump_sql("2024-12-31"),
        mode=0o600,
        mtime=epoch("2024-12-31T23:10:00Z"),
    )
    vol.symlink("storage/admin_example.org/backups/latest.sql", "../exports/prod-2024-12-31.sql")
    vol.file("storage/admin_example.org/.pgpass.lock", b"", mode=0o600)
    vol.dir("azurecredentialcache")
    return vol


def _dump_sql(day: str) -> bytes:
    lines = [
        f"-- PostgreSQL database dump ({day})",
        "SET statement_timeout = 0;",
        "SET client_encoding = 'UTF8';",
        "CREATE TABLE public.customers (id bigint NOT NULL, name text NOT NULL, created_at timestamptz);",
        "COPY public.customers (id, name, created_at) FROM stdin;",
    ]
    lines += [f"{i}\tCustomer {i:03d}\t2024-0{1 + i % 9}-1{i % 9}T10:00:00Z" for i in range(1, 41)]
    lines += ["\\.", "-- PostgreSQL database dump complete", ""]
    return "\n".join(lines).encode()
