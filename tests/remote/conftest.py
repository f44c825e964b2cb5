"""An OpenSSH server on 127.0.0.1, started by the tests, and an isolated client setup.

sshd runs as the current user on a free high port with a generated host key; the client
gets a generated ssh_config (`ssh -F`) naming a generated user key and known_hosts, so the
user's own ~/.ssh is never read or changed. The remote host's folder (mirrors, runs) lies
under the test's temp folder. Where sshd is not installed (.ci/run installs it) the tests
that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from segstudio.remote.hosts import HostConfig, HostRegistry

HOST = "segtest"  # the alias of the test server in the generated ssh_config
BAD_KEY_HOST = "segtest-badkey"  # same server, a key it does not know
DOWN_HOST = "segtest-down"  # a port nobody listens on


@dataclass(frozen=True)
class SshServer:
    folder: Path
    port: int
    config: Path  # the client's ssh_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sshd() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    sshd = _sshd()
    if sshd is None or shutil.which("ssh") is None:
        pytest.skip("OpenSSH (sshd and ssh) is not installed; apt-get install openssh-server openssh-client")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key", "other_key"):
        _keygen(folder / name)
    authorized = folder / "authorized_keys"
    shutil.copyfile(folder / "user_key.pub", authorized)
    authorized.chmod(0o600)
    port, down = _free_port(), _free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 50\nMaxStartups 50\n"
        "Subsystem sftp internal-sftp\n")
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    common = (f"  HostName 127.0.0.1\n  User {os.environ.get('USER') or _user()}\n  IdentitiesOnly yes\n"
              f"  IdentityAgent none\n  UserKnownHostsFile {folder / 'known_hosts'}\n"
              "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
    config = folder / "ssh_config"
    config.write_text(
        f"Host {HOST}\n  Port {port}\n  IdentityFile {folder / 'user_key'}\n{common}"
        f"Host {BAD_KEY_HOST}\n  Port {port}\n  IdentityFile {folder / 'other_key'}\n{common}"
        f"Host {DOWN_HOST}\n  Port {down}\n  IdentityFile {folder / 'user_key'}\n{common}")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")],
                              stdout=open(folder / "sshd.log", "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()}")
            time.sleep(0.1)
    yield SshServer(folder, port, config)
    server.terminate()
    server.wait(timeout=10)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture()
def remote_env(ssh_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process and its children use the test server's ssh_config, a private socket folder
    and a private hosts registry; returns the host's folder (the host's ROOT)."""
    control = Path(tempfile.mkdtemp(prefix="ssc", dir="/tmp"))  # a socket path must stay short
    monkeypatch.setenv("SEGSTUDIO_SSH_CONFIG", str(ssh_server.config))
    monkeypatch.setenv("SEGSTUDIO_SSH_CONTROL_DIR", str(control))
    monkeypatch.setenv("SEGSTUDIO_CONFIG_DIR", str(tmp_path / "config"))
    yield tmp_path / "host"
    for name in os.listdir(control):  # end the shared connections this test opened
        subprocess.run(["ssh", "-F", str(ssh_server.config), "-o", f"ControlPath={control}/{name}", "-O", "exit",
                        "x"], capture_output=True, check=False)
    shutil.rmtree(control, ignore_errors=True)


def host_python(folder: Path) -> Path:
    """The host's 'interpreter': this test interpreter (segstudio and torch installed), at the
    lowest priority and on one thread, so a remote run leaves the machine to others."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "python"
    wrapper.write_text(f"#!/bin/sh\nOMP_NUM_THREADS=1 exec nice -n 19 {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture()
def host(remote_env: Path) -> HostConfig:
    """The test server registered as a host whose interpreter already has segstudio."""
    config = HostConfig(HOST, python=str(host_python(remote_env / "bin")), root=str(remote_env), min_free_gb=0.0)
    HostRegistry().put(config)
    return config
