"""The integer (INT8/INT4) datapath: dot products, per-vector scale units and 2:4 sparse selection."""
