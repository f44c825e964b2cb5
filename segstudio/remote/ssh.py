"""The system OpenSSH client, driven as a subprocess.

OpenSSH itself reads ~/.ssh/config (aliases, keys, ProxyJump) and talks to the agent, so a
host that works in a terminal works here. Connections are multiplexed (ControlMaster), so
after the first command each further one costs a round trip, not a handshake. BatchMode
keeps ssh from ever asking for a password on a terminal the app does not have; a failure
becomes a RemoteError that names the host and says what to do.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from segstudio.core.errors import SegstudioError

# Tests point ssh at a generated configuration, so the user's own is never read.
SSH_CONFIG_ENV = "SEGSTUDIO_SSH_CONFIG"
CONTROL_DIR_ENV = "SEGSTUDIO_SSH_CONTROL_DIR"
SSH_EXIT_ERROR = 255  # ssh's own failure, as opposed to the remote command's exit code


class RemoteError(SegstudioError):
    """A remote host cannot be reached or used; the message names the host and the fix."""


@dataclass(frozen=True)
class Result:
    """A finished remote command."""

    code: int
    stdout: str
    stderr: str


def control_dir() -> Path:
    """Where the multiplexing sockets live: short (a socket path has ~100 bytes) and private."""
    override = os.environ.get(CONTROL_DIR_ENV)
    base = Path(override) if override else Path(tempfile.gettempdir()) / f"segstudio-ssh-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


def ssh_options(connect_timeout_s: int = 15) -> list[str]:
    """The options every ssh call gets (before the destination)."""
    options: list[str] = []
    config = os.environ.get(SSH_CONFIG_ENV)
    if config:
        options += ["-F", config]
    options += [
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={connect_timeout_s}",
        "-o", "ServerAliveInterval=10",
        "-o", "ServerAliveCountMax=3",
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={control_dir() / '%C'}",
        "-o", "ControlPersist=120",
    ]
    return options


def shell_path(path: str) -> str:
    """A host path quoted for the host's shell, with a leading ~/ expanded there."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def explain(host: str, stderr: str) -> str:
    """ssh's own failure (exit 255) in plain words, with what to do."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "no message"
    low = text.lower()
    if "permission denied" in low:
        return (f"host {host} rejected the SSH key ({last}); add your public key to the host's "
                f"~/.ssh/authorized_keys (ssh-copy-id {host}) or load the key into ssh-agent, "
                f"then check that 'ssh {host}' works in a terminal")
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return (f"the host key of {host} is unknown or changed ({last}); connect once with "
                f"'ssh {host}' in a terminal and confirm the key")
    if "could not resolve hostname" in low:
        return (f"cannot find host {host} ({last}); check the name, or add it to ~/.ssh/config")
    return (f"cannot reach host {host} ({last}); check that it is switched on and on the network, "
            f"that 'ssh {host}' works in a terminal, then 'segstudio remote check {host}'")


class Ssh:
    """Commands on one host through OpenSSH, sharing one multiplexed connection."""

    def __init__(self, host: str, connect_timeout_s: int = 15) -> None:
        self.host = host
        self.connect_timeout_s = connect_timeout_s

    def argv(self, command: str, *, tty: bool = False) -> list[str]:
        return ["ssh", *ssh_options(self.connect_timeout_s), "-T" if not tty else "-t", self.host, command]

    def run(self, command: str, *, stdin: bytes | IO[bytes] | None = None, timeout_s: float | None = 120,
            check: bool = True) -> Result:
        """Run `command` (a shell command line on the host); ssh failures raise RemoteError.
        With `check`, a non-zero exit of the command raises RemoteError too."""
        kwargs: dict[str, Any] = {"capture_output": True, "timeout": timeout_s}
        if isinstance(stdin, bytes):
            kwargs["input"] = stdin
        else:
            kwargs["stdin"] = stdin if stdin is not None else subprocess.DEVNULL
        try:
            done = subprocess.run(self.argv(command), **kwargs)
        except FileNotFoundError as exc:
            raise RemoteError("the OpenSSH client 'ssh' is not installed on this computer; "
                              "install it (e.g. apt-get install openssh-client)") from exc
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"host {self.host} did not answer within {timeout_s:.0f} s; "
                              f"check the connection, then try again") from exc
        result = Result(done.returncode, done.stdout.decode("utf-8", "replace"),
                        done.stderr.decode("utf-8", "replace"))
        if result.code == SSH_EXIT_ERROR:
            raise RemoteError(explain(self.host, result.stderr))
        if check and result.code != 0:
            raise RemoteError(f"on host {self.host}, '{command[:80]}' failed (exit {result.code}): "
                              f"{result.stderr.strip()[-400:] or result.stdout.strip()[-400:]}")
        return result

    def popen(self, command: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """A long-running remote command (a stream); the caller reads and waits."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        try:
            return subprocess.Popen(self.argv(command), **kwargs)
        except FileNotFoundError as exc:
            raise RemoteError("the OpenSSH client 'ssh' is not installed on this computer; "
                              "install it (e.g. apt-get install openssh-client)") from exc

    def close(self) -> None:
        """End the shared connection (its master process), if one is open."""
        subprocess.run(["ssh", *ssh_options(self.connect_timeout_s), "-O", "exit", self.host],
                       capture_output=True, timeout=15, check=False)


def python_command(python: str, module_args: list[str]) -> str:
    """`python -m segstudio.remote.agent ...` as a host shell command line."""
    return " ".join([shell_path(python), *(shlex.quote(a) for a in module_args)])
