"""Training in the app: panel, child process, live dashboard, runs history (issue #5)."""
