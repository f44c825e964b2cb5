"""The open project: workspace (open, close, navigate), editing sessions, mask persistence,
autosave, the image list and the new-project / import dialogs."""
