"""The verification library: configurations, scenarios, stall generators, scoreboard and coverage, shared by
the Amaranth-simulator tests (`verif.amaranth_streams`) and the cocotb regression on the Verilog (`verif.rtl`)."""
