"""An example slidescout tool plugin (see docs/plugins.md in the slidescout repository)."""

from slidescout_plugin_example.tools import TOOLS, ColorHistogram, tissue_fraction

__all__ = ["TOOLS", "ColorHistogram", "tissue_fraction"]
__version__ = "0.1.0"
