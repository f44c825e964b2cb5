"""Training on another computer over SSH: hosts, data sync, detached runs, event streaming.

Qt-free and torch-free (an import-linter contract holds it), so the command line, the app
and the host side (`python -m segstudio.remote.agent`) share it. All networking goes through
the system OpenSSH client, so ~/.ssh/config aliases, keys, the agent and ProxyJump work as
they do in a terminal.

    ssh.py      the OpenSSH client: multiplexed connections, errors in plain words
    hosts.py    the hosts registry in the user's config folder
    probe.py    what a host offers (Python, segstudio, GPUs, disk) and what a run needs
    install.py  `remote setup`: a venv on the host from a wheel built here
    sync.py     the project mirror on the host, content-hashed and atomic
    agent.py    the host side: receive files, start / follow / stop a detached run
    runs.py     this side of a remote run: launch, stream, re-attach, stop, fetch back
"""
