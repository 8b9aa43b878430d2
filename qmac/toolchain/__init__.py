"""Runners for the external tools: Yosys synthesis, nextpnr bitstreams, SymbiYosys formal checks."""
