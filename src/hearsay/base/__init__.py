"""The bottom layer: errors, units and small ports shared by every other layer."""
