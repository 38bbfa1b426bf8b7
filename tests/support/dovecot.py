"""A throwaway Dovecot IMAP server for the tests, from Debian's `dovecot-imapd`.

The IMAP source is tested against a real server because its whole job is coping with what real
servers answer (CONDSTORE, QRESYNC's VANISHED, SPECIAL-USE, UIDVALIDITY resets, restarts
mid-sync); a fake would only answer what we already believe.

Each server lives in its own temp directory with its own configuration file (`dovecot -c`), so
nothing system-wide changes and parallel test workers never meet: loopback ports picked free,
users in passwd-files, Maildirs under the temp dir, a TLS certificate issued by a throwaway
`trustme` CA (`ca_path` is the PEM clients must trust), and an OAuth token introspection
endpoint on a loopback port for XOAUTH2 (`add_oauth_token`). Login services run without chroot
and, when the tests run as root, mail is owned by `nobody`, so the directory is world-readable.

`DovecotServer(introspection=IntrospectionEndpoint(url, ca))` asks another introspection endpoint
instead, over HTTPS with that CA -- the identity emulator's (tests/emulators/identity.py), which
judges tokens as Exchange Online and Gmail do -- and offers OAUTHBEARER (RFC 7628) besides
XOAUTH2. Such a server is a second instance, so the password-based tests keep theirs unchanged.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme
from imapclient import IMAPClient  # type: ignore[import-untyped]

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
HOST = "127.0.0.1"
# The folders every user gets, with their SPECIAL-USE attribute (RFC 6154).
SPECIAL_FOLDERS = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}

_CONFIG = """\
# Generated for one test run; see tests/support/dovecot.py.
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 0
first_valid_gid = 0
ssl = yes
ssl_cert = <{root}/tls/server.pem
ssl_key = <{root}/tls/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login {oauth_mechanisms}
# Tests of wrong passwords need no 2-second penalty.
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
mail_plugins =
mailbox_list_index = yes
mail_fsync = never  # the mail dies with the test run anyway
login_greeting = Rapport test Dovecot ready.
# Parallel tests open several connections for one user from one address.
mail_max_userip_connections = 200
# One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a second, so a
# user added right after a login elsewhere would not exist yet; a new file is read on first use.
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
# XOAUTH2 access tokens, checked against an introspection endpoint (RFC 7662).
passdb {{
  driver = oauth2
  mechanisms = {oauth_mechanisms}
  args = {root}/oauth2.conf
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
  default_fields = uid={mail_uid} gid={mail_gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No growing delays after the wrong-password tests (Dovecot's per-IP auth penalty).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service ipc {{
  chroot =
}}
service old-stats {{
  chroot =
}}
service aggregator {{
  chroot =
}}
"""


@dataclass(frozen=True)
class IntrospectionEndpoint:
    """Where Dovecot checks OAuth access tokens: an RFC 7662 endpoint (POST token=...) over
    HTTPS, trusted through `ca_path`."""

    url: str
    ca_path: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _require_dovecot() -> None:
    if not DOVECOT.exists():
        raise RuntimeError(
            f"Dovecot not found at {DOVECOT}: the IMAP tests need a real IMAP server "
            "(Debian: apt-get install dovecot-imapd; ./scripts/setup.sh test installs it)"
        )


class DovecotServer:
    """One Dovecot instance: start(), stop(), restart(), users, and helpers to fill mailboxes."""

    def __init__(self, *, introspection: IntrospectionEndpoint | None = None) -> None:
        _require_dovecot()
        self.introspection = introspection
        self.root = Path(tempfile.mkdtemp(prefix="rdc-"))  # short: Unix socket paths are capped
        self.root.chmod(0o755)
        self.host = HOST
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._passwords: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._introspection = _Introspection(self._tokens)
        try:
            self._setup()
        except BaseException:
            self._introspection.close()
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # -- configuration ------------------------------------------------------------------------

    def _setup(self) -> None:
        if os.geteuid() == 0:
            # Root runs Dovecot's master; its helpers and the mail run as unprivileged users.
            login_user, internal_user = "dovenull", "dovecot"
            mail_user = pwd.getpwnam("nobody")
        else:
            login_user = internal_user = pwd.getpwuid(os.geteuid()).pw_name
            mail_user = pwd.getpwuid(os.geteuid())
        for sub in ("run", "state", "mail", "home", "tls", "users"):
            (self.root / sub).mkdir(mode=0o755)
        for sub in ("mail", "home"):
            os.chown(self.root / sub, mail_user.pw_uid, mail_user.pw_gid)

        self.ca = trustme.CA()
        leaf = self.ca.issue_cert("localhost", HOST)
        leaf.cert_chain_pems[0].write_to_path(str(self.root / "tls" / "server.pem"))
        leaf.private_key_pem.write_to_path(str(self.root / "tls" / "server.key"))
        self.ca.cert_pem.write_to_path(str(self.root / "tls" / "ca.pem"))
        (self.root / "tls" / "server.key").chmod(0o600)

        (self.root / "oauth2.conf").write_text(self._oauth2_config())
        mailboxes = "\n".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}"
            for name, flag in SPECIAL_FOLDERS.items()
        )
        self.config_path.write_text(
            _CONFIG.format(
                host=HOST,
                root=self.root,
                instance=f"rapport-test-{self.root.name}",
                login_user=login_user,
                internal_user=internal_user,
                mail_uid=mail_user.pw_uid,
                mail_gid=mail_user.pw_gid,
                mailboxes=mailboxes,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                oauth_mechanisms="xoauth2" if self.introspection is None else "xoauth2 oauthbearer",
            )
        )

    def _oauth2_config(self) -> str:
        if self.introspection is None:
            return (
                f"introspection_url = {self._introspection.url}\n"
                "introspection_mode = post\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
            )
        # The CA goes beside the configuration: Dovecot's auth process (another user when the
        # tests run as root) must be able to read it.
        ca = self.root / "tls" / "introspection-ca.pem"
        shutil.copyfile(self.introspection.ca_path, ca)
        ca.chmod(0o644)
        return (
            f"introspection_url = {self.introspection.url}\n"
            "introspection_mode = post\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            f"tls_ca_cert_file = {ca}\n"
            "timeout_msecs = 10000\n"
        )

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def ca_path(self) -> Path:
        """The PEM of the CA that issued the server's certificate: what clients must trust."""
        return self.root / "tls" / "ca.pem"

    @property
    def url(self) -> str:
        return f"imaps://{self.host}:{self.imaps_port}"

    @property
    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.process is not None:
            return
        # -F: stay in the foreground, a child of the test process, so stop() knows whom to end.
        with (self.root / "stdout.log").open("ab") as output:
            self.process = subprocess.Popen(
                [str(DOVECOT), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                self.process = None
                output = (self.root / "stdout.log").read_text(errors="replace")
                raise RuntimeError(f"dovecot exited at start:\n{output}\n{self.log}")
            if all(self._accepts(port) for port in (self.imap_port, self.imaps_port)):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not start listening within 20 s:\n{self.log}")
            time.sleep(0.02)

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1) as sock:
                # The greeting proves the login process is up, not just the listening socket.
                if port == self.imaps_port:
                    return True
                sock.settimeout(5)
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and drop its open IMAP connections; mail and users are kept.

        Dovecot's master exits on SIGTERM but leaves running sessions (and the login process
        proxying their TLS) to notice on their own, which may take minutes; a restart in a test
        must cut them like a crash or reboot does, so they are ended too, by their ids.
        """
        if self.process is None:
            return
        children = _children(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        _end(children)
        deadline = time.monotonic() + 10
        while any(self._listening(p) for p in (self.imap_port, self.imaps_port)):
            if time.monotonic() > deadline:
                raise RuntimeError("dovecot's listeners stayed open after stop")
            time.sleep(0.02)

    def _listening(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1):
                return True
        except OSError:
            return False

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        self._introspection.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- users and mail -----------------------------------------------------------------------

    def add_user(self, name: str, password: str | None = None) -> str:
        """Add a user (a random password unless given); returns the password."""
        if not name.replace("-", "").replace("_", "").replace(".", "").replace("@", "").isalnum():
            raise ValueError(f"not a usable test user name: {name!r}")
        if name in self._passwords:
            raise ValueError(f"user {name!r} exists already")
        password = password if password is not None else secrets.token_urlsafe(12)
        self._passwords[name] = password
        path = self.root / "users" / name
        path.write_text(f"{name}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
        path.chmod(0o644)
        return password

    def add_oauth_token(self, user: str) -> str:
        """A fresh XOAUTH2 access token for `user` (an existing user); revoke_oauth_token ends it."""
        token = secrets.token_urlsafe(24)
        self._tokens[token] = user
        return token

    def revoke_oauth_token(self, token: str) -> None:
        self._tokens.pop(token, None)

    def password(self, user: str) -> str:
        return self._passwords[user]

    def client(self, user: str) -> IMAPClient:
        """A logged-in client over IMAPS (close it with `logout()`, or use it in a `with`)."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        client = IMAPClient(self.host, port=self.imaps_port, ssl_context=context, timeout=30)
        try:
            client.login(user, self._passwords[user])
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, user: str, folder: str, raw: bytes, flags: Sequence[str] = ()) -> int:
        """Store one message; returns its UID (from APPENDUID)."""
        with self.client(user) as client:
            return _appended_uid(client.append(folder, raw, flags=tuple(flags)))

    def append_many(self, user: str, folder: str, messages: Iterable[bytes]) -> list[int]:
        """Store many messages (MULTIAPPEND, 500 a command); returns their UIDs in order."""
        pending = list(messages)
        uids: list[int] = []
        with self.client(user) as client:
            for start in range(0, len(pending), 500):
                chunk = pending[start : start + 500]
                typ, data = client.multiappend(folder, chunk)  # (typ, data), unlike append()
                if typ != "OK":
                    raise RuntimeError(f"MULTIAPPEND failed: {data!r}")
                uids += _appended_uids(data[-1])
        return uids

    def delete(self, user: str, folder: str, uids: Iterable[int]) -> None:
        """Flag the messages \\Deleted and expunge them."""
        wanted = list(uids)
        with self.client(user) as client:
            client.select_folder(folder)
            client.delete_messages(wanted)
            client.uid_expunge(wanted)
            client.close_folder()

    def move(self, user: str, source: str, target: str, uids: Iterable[int]) -> None:
        with self.client(user) as client:
            client.select_folder(source)
            client.move(list(uids), target)
            client.close_folder()

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as client:
            client.create_folder(folder)

    def uids(self, user: str, folder: str) -> list[int]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.client(user) as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def set_uidvalidity(self, user: str, folder: str, uidvalidity: int | None = None) -> int:
        """Force a UIDVALIDITY change, as a server does after rebuilding a mailbox's index.

        `doveadm mailbox update --uid-validity` changes it in place, keeping the messages (a
        real server that loses its UID map renumbers the same mail the same way).
        """
        new = uidvalidity if uidvalidity is not None else self.uidvalidity(user, folder) + 1000
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        return new

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            [str(DOVEADM), "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user


class _Introspection:
    """An OAuth 2.0 token introspection endpoint (RFC 7662) that Dovecot asks about tokens."""

    def __init__(self, tokens: dict[str, str]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                user = tokens.get(form.get("token", [""])[0])
                answer = {"active": "true", "username": user} if user else {"active": "false"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: the test output is not the place

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://{HOST}:{self.server.server_address[1]}/introspect"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _children(pid: int) -> list[int]:
    """Ids of the direct children of process `pid` (Dovecot's services and sessions)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _end(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _appended_uid(response: bytes) -> int:
    return _appended_uids(response)[0]


def _appended_uids(response: bytes) -> list[int]:
    """UIDs out of Dovecot's "[APPENDUID <uidvalidity> <uid-set>] Append completed." (UIDPLUS)."""
    text = response.decode("ascii", "replace")
    marker = "[APPENDUID "
    if marker not in text:
        raise RuntimeError(f"no APPENDUID in the server's answer: {text}")
    uid_set = text.split(marker, 1)[1].split("]", 1)[0].split()[1]
    uids: list[int] = []
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        uids += range(int(low), int(high or low) + 1)
    return uids
