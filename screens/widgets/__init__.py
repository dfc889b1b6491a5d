"""Widgets the screens share, one module per area: ``plot`` (growing series and the plot that draws them
at ~2 points per column), ``tail_log`` (a log that follows its tail), ``confirm`` (a yes/no modal), ``footer``
(Textual's footer, rebuilt only when the keys it shows change), ``form`` (a labelled field with its
error line and its help text) and ``format`` (numbers in table cells).

Every widget, like every screen, carries its DEFAULT_CSS (theme variables only); the shell's workbench.tcss keeps
only what is app-wide.
"""
