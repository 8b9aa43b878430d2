"""The MAC array and the top level: processing elements, the R x C array, the core, Verilog emission."""
