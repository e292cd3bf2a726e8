"""The HDL: Amaranth components of the engine and its Verilog generator; imports amaranth and `contract` only."""
