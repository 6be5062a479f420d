"""The ``vaultwarden-data`` volume: a Vaultwarden-shaped SQLite database, attachments, RSA keys, config.

The schema follows Vaultwarden's SQLite migrations (users, ciphers, attachments, folders,
organizations, collections, devices, twofactor and diesel's migration table). Vault items are
Bitwarden cipher strings (``2.<iv>|<ciphertext>|<mac>``) made of deterministic bytes: they look
encrypted because that is all a server ever stores.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from _gen import pki, sqlitedb
from _gen.common import det_bytes, epoch, secret_token, ts_add, uid
from _gen.sqlitedb import Row
from _gen.tarball import Tree

_MIGRATIONS = [
    "20180114171611",
    "20180217205753",
    "20180427155151",
    "20180508161616",
    "20180525232323",
    "20180601112529",
    "20180711181453",
    "20180827172114",
    "20180910111213",
    "20180919144557",
    "20181127152651",
    "20190526216651",
    "20191010083032",
    "20191117011009",
    "20200313205045",
    "20200409235005",
    "20200701214531",
    "20200802025025",
    "20201130224000",
    "20201209173101",
    "20210311190243",
    "20210430233251",
    "20210701203140",
    "20210830193501",
    "20211024164321",
    "20220117234911",
    "20220302000000",
    "20221207000000",
    "20230201000000",
    "20230614000000",
    "20231016000000",
    "20240202000000",
]

SCHEMA = """
CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
  run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE users (uuid TEXT NOT NULL PRIMARY KEY, created_at DATETIME NOT NULL, updated_at DATETIME NOT
  NULL,
  email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, password_hash BLOB NOT NULL, salt BLOB NOT NULL,
  password_iterations INTEGER NOT NULL, password_hint TEXT, akey TEXT NOT NULL, private_key TEXT,
  public_key TEXT,
  totp_secret TEXT, totp_recover TEXT, security_stamp TEXT NOT NULL, equivalent_domains TEXT NOT NULL,
  excluded_globals TEXT NOT NULL, client_kdf_type INTEGER NOT NULL DEFAULT 0,
  client_kdf_iter INTEGER NOT NULL DEFAULT 100000, verified_at DATETIME DEFAULT NULL,
  last_verifying_at DATETIME DEFAULT NULL, login_verify_count INTEGER NOT NULL DEFAULT 0,
  email_new TEXT DEFAULT NULL, email_new_token TEXT DEFAULT NULL, enabled BOOLEAN NOT NULL DEFAULT 1,
  stamp_exception TEXT DEFAULT NULL, api_key TEXT, avatar_color TEXT, client_kdf_memory INTEGER DEFAULT
  NULL,
  client_kdf_parallelism INTEGER DEFAULT NULL, external_id TEXT);
CREATE TABLE organizations (uuid TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, billing_email TEXT NOT NULL,
  private_key TEXT, public_key TEXT);
CREATE TABLE users_organizations (uuid TEXT NOT NULL PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES
  users (uuid),
  org_uuid TEXT NOT NULL REFERENCES organizations (uuid), access_all BOOLEAN NOT NULL, akey TEXT NOT NULL,
  status INTEGER NOT NULL, atype INTEGER NOT NULL, reset_password_key TEXT, external_id TEXT,
  UNIQUE (user_uuid, org_uuid));
CREATE TABLE collections (uuid TEXT NOT NULL PRIMARY KEY, org_uuid TEXT NOT NULL REFERENCES organizations
  (uuid),
  name TEXT NOT NULL, external_id TEXT);
CREATE TABLE folders (uuid TEXT NOT NULL PRIMARY KEY, created_at DATETIME NOT NULL, updated_at DATETIME
  NOT NULL,
  user_uuid TEXT NOT NULL REFERENCES users (uuid), name TEXT NOT NULL);
CREATE TABLE ciphers (uuid TEXT NOT NULL PRIMARY KEY, created_at DATETIME NOT NULL, updated_at DATETIME
  NOT NULL,
  user_uuid TEXT REFERENCES users (uuid), organization_uuid TEXT REFERENCES organizations (uuid),
  atype INTEGER NOT NULL, name TEXT NOT NULL, notes TEXT, fields TEXT, data TEXT NOT NULL,
  password_history TEXT,
  deleted_at DATETIME, reprompt INTEGER, key TEXT);
CREATE TABLE attachments (id TEXT NOT NULL PRIMARY KEY, cipher_uuid TEXT NOT NULL REFERENCES ciphers (uuid),
  file_name TEXT NOT NULL, file_size INTEGER NOT NULL, akey TEXT);
CREATE TABLE folders_ciphers (cipher_uuid TEXT NOT NULL REFERENCES ciphers (uuid),
  folder_uuid TEXT NOT NULL REFERENCES folders (uuid), PRIMARY KEY (cipher_uuid, folder_uuid));
CREATE TABLE ciphers_collections (cipher_uuid TEXT NOT NULL REFERENCES ciphers (uuid),
  collection_uuid TEXT NOT NULL REFERENCES collections (uuid), PRIMARY KEY (cipher_uuid, collection_uuid));
CREATE TABLE devices (uuid TEXT NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
  user_uuid TEXT NOT NULL REFERENCES users (uuid), name TEXT NOT NULL, atype INTEGER NOT NULL, push_uuid
  TEXT,
  push_token TEXT, refresh_token TEXT NOT NULL, twofactor_remember TEXT, PRIMARY KEY (uuid, user_uuid));
CREATE TABLE twofactor (uuid TEXT NOT NULL PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES users (uuid),
  atype INTEGER NOT NULL, enabled BOOLEAN NOT NULL, data TEXT NOT NULL, last_used INTEGER NOT NULL
  DEFAULT 0,
  UNIQUE (user_uuid, atype));
"""

_USERS = [
    ("admin@example.org", "Ops Admin"),
    ("alice@example.org", "Alice Martin"),
    ("bob@example.org", "Bob Durand"),
]
_FOLDERS = ["Infrastructure", "Personal", "Finance", "Customers"]
#: (owner index or -1 for the organization, type 1=login 2=note 3=card 4=identity, folder index or -1)
_CIPHERS = [
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 2, 0),
    (1, 1, 1),
    (1, 1, 1),
    (1, 3, 2),
    (1, 4, 1),
    (2, 1, 3),
    (2, 1, 3),
    (2, 2, -1),
    (-1, 1, -1),
    (-1, 1, -1),
    (-1, 2, -1),
    (0, 1, -1),
]
#: Attachments: (cipher index, file name, size in bytes)
ATTACHMENTS = [
    (3, "recovery-codes.txt", 1_872),
    (7, "passport-scan.pdf", 11_264),
    (13, "wildcard-cert.p12", 6_144),
]
USER_VERSION = len(_MIGRATIONS)


def _enc(label: str, size: int = 32) -> str:
    """A Bitwarden type-2 cipher string (AES-CBC-256 + HMAC-SHA256) over deterministic bytes."""
    raw = det_bytes("bw:" + label, 48 + size)
    parts = [raw[:16], raw[48:], raw[16:48]]
    return "2." + "|".join(base64.b64encode(p).decode() for p in parts)


def _time(seconds: int) -> str:
    return ts_add("2024-03-02T19:40:11Z", seconds).replace("T", " ").replace("Z", ".000000000")


def cipher_uuid(index: int) -> str:
    """The uuid of the ``index``-th vault item."""
    return uid("vw-cipher", str(index))


def attachment_id(index: int) -> str:
    """The 20-hex-digit id Vaultwarden gives an attachment (also its file name on disk)."""
    return det_bytes(f"vw-att:{index}", 10).hex()


def _user_rows() -> list[Row]:
    rows: list[Row] = []
    for i, (email, name) in enumerate(_USERS):
        public_key = base64.b64encode(det_bytes("pub:" + email, 294)).decode()
        avatar = "#16a085" if i == 0 else None
        # fmt: off
        rows.append((uid("vw-user", email), _time(i * 3600), _time(200_000 + i * 977), email, name,
                     det_bytes("pwhash:" + email, 32), det_bytes("salt:" + email, 64), 600_000, None,
                     _enc("akey:" + email, 64), _enc("priv:" + email, 1232), public_key, None, None,
                     str(uid("stamp", email)), "[]", "[]", 0, 600_000, _time(i * 3600 + 60), None, 0, None, None, 1,
                     None, secret_token("vw-apikey:" + email, 30), avatar, None, None, None))
        # fmt: on
    return rows


def _cipher_rows() -> list[Row]:
    org = uid("vw-org", "example-ops")
    rows: list[Row] = []
    for i, (owner, atype, _) in enumerate(_CIPHERS):
        user = None if owner < 0 else uid("vw-user", _USERS[owner][0])
        login = {"Name": _enc(f"name:{i}"), "Notes": None, "Username": _enc(f"user:{i}"), "Password": _enc(f"pw:{i}")}
        extra = {"Uris": [{"Uri": _enc(f"uri:{i}", 48), "Match": None}], "Totp": None, "PasswordRevisionDate": None}
        data = json.dumps({**login, **extra, "Fields": None})
        deleted = _time(900_000) if i == 14 else None
        notes = _enc(f"notes:{i}", 64) if atype == 2 else None
        # fmt: off
        rows.append((cipher_uuid(i), _time(10_000 + i * 5_401), _time(400_000 + i * 7_919), user,
                     org if owner < 0 else None, atype, _enc(f"name:{i}"), notes, None, data, None, deleted, 0, None))
        # fmt: on
    return rows


def _membership_rows(org: str, users: list[str]) -> dict[str, Sequence[Row]]:
    devices = [(users[0], "firefox", 10), (users[0], "Pixel 8", 0), (users[1], "chrome", 9), (users[2], "iPhone", 1)]
    org_public = base64.b64encode(det_bytes("orgpub", 294)).decode()
    # fmt: off
    return {
        "organizations": [(org, "Example Ops", "admin@example.org", _enc("orgpriv", 1232), org_public)],
        "users_organizations": [(uid("vw-uo", u), u, org, 1 if j == 0 else 0, _enc("uoakey:" + u, 64), 2,
                                 0 if j == 0 else 2, None, None) for j, u in enumerate(users[:2])],
        "devices": [(uid("vw-dev", u, str(k)), _time(30_000 + k), _time(800_000 + k), u, name, atype, None, None,
                     secret_token(f"refresh:{u}:{k}", 88), None) for k, (u, name, atype) in enumerate(devices)],
    }
    # fmt: on


def _rows() -> dict[str, Sequence[Row]]:
    org = uid("vw-org", "example-ops")
    users = [uid("vw-user", e) for e, _ in _USERS]
    # fmt: off
    folders = [(uid("vw-folder", f), _time(5_000 + i * 60), _time(5_000 + i * 60), users[min(i, 2)], _enc("f:" + f))
               for i, f in enumerate(_FOLDERS)]
    # fmt: on
    collections = [(uid("vw-coll", n), org, _enc("coll:" + n), None) for n in ("Shared infra", "On-call")]
    membership = _membership_rows(org, users)
    attachments = [(attachment_id(k), cipher_uuid(ci), _enc("fn:" + name), size, _enc(f"attkey:{k}", 64))
                   for k, (ci, name, size) in enumerate(ATTACHMENTS)]  # fmt: skip
    return {
        "__diesel_schema_migrations": [(v, _time(-40 + i)) for i, v in enumerate(_MIGRATIONS)],
        "users": _user_rows(),
        "organizations": membership["organizations"],
        "users_organizations": membership["users_organizations"],
        "collections": collections,
        "folders": folders,
        "ciphers": _cipher_rows(),
        "attachments": attachments,
        "folders_ciphers": [(cipher_uuid(i), folders[f][0]) for i, (_, _, f) in enumerate(_CIPHERS) if f >= 0],
        "ciphers_collections": [(cipher_uuid(i), collections[i % 2][0]) for i in (11, 12, 13)],
        "devices": membership["devices"],
        "twofactor": [(uid("vw-2fa", users[0]), users[0], 0, 1, json.dumps(secret_token("totp", 32)), 0)],
    }


def database() -> bytes:
    """The bytes of ``db.sqlite3``."""
    return sqlitedb.build(SCHEMA, _rows(), user_version=USER_VERSION)


def _config_json() -> bytes:
    admin_hash = (
        "$argon2id$v=19$m=65540,t=3,p=4$"
        + base64.b64encode(det_bytes("vw-admin-salt", 32)).decode().rstrip("=")
        + "$"
        + base64.b64encode(det_bytes("vw-admin-hash", 32)).decode().rstrip("=")
    )
    config = {
        "domain": "https://vault.example.org",
        "signups_allowed": False,
        "invitations_allowed": True,
        "admin_token": admin_hash,
        "smtp_host": "smtp.tem.scw.cloud",
        "smtp_security": "starttls",
        "smtp_port": 587,
        "smtp_from": "vault@example.org",
        "smtp_username": "vaultwarden",
        "smtp_password": secret_token("vaultwarden-smtp-password", 36),
    }
    return (json.dumps(config, indent=2) + "\n").encode()


def tree() -> Tree:
    """The volume as it sits on the source (root-owned: the upstream image runs as root)."""
    start = epoch("2024-03-02T19:40:11Z")
    vol = Tree(uid=0, gid=0, mtime=epoch("2025-01-20T09:58:02Z"))
    key = pki.rsa_key("vaultwarden-jwt")
    vol.file("db.sqlite3", database())
    vol.file("rsa_key.pem", pki.private_pem(key, pkcs8=True).encode(), mode=0o600, mtime=start)
    vol.file("rsa_key.pub.pem", pki.public_pem(key).encode(), mtime=start)
    vol.file("config.json", _config_json(), mode=0o600, mtime=epoch("2024-03-02T20:12:40Z"))
    for k, (ci, _, size) in enumerate(ATTACHMENTS):
        payload = b"\x02" + det_bytes(f"attachment-body:{k}", size - 1)
        vol.file(f"attachments/{cipher_uuid(ci)}/{attachment_id(k)}", payload, mtime=start + 86_400 * (k + 3))
    vol.dir("icon_cache")
    vol.dir("sends")
    vol.dir("tmp")
    return vol
