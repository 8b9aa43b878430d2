"""The logarithmic (LNS) datapath: shared-fraction-bucket dot products, the combine stage, log encoding."""
