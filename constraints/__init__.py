"""Board pin and clock data, shipped as package data (``qmac.constraints``) and read with importlib.resources."""
