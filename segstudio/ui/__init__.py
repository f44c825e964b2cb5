"""Qt user interface. Importing it first guards against a PySide6 6.12 refcount bug."""

from segstudio.ui.qt_compat import protect_singletons

protect_singletons()
