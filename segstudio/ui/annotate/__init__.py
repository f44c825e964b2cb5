"""Painting masks: the canvas and its layers, the pointer tools, the tool bar and the class list."""
