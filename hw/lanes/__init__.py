"""Lane multipliers: one 8-bit operand lane's product(s) in logic or on a DSP block (registry: ``MULTIPLIERS``)."""
