"""The Textual screens, one module per screen, with the widgets (``widgets/``), messages and service
interface they share. Imports ``sessions``, ``engine.spec`` and ``engine.errors`` only; the rest comes
from the ``Services`` object the App hands each screen."""
