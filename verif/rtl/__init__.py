"""Running engine commands, and layer programs on the program engine, on the emitted Verilog under cocotb
(Verilator or Icarus).

Shared by `python -m apps.run --rtl` and the regression in rtl_tests/: the runner builds the Verilog through
`hw.generate`, the stream drivers and the bench drive it with the beats of `sim.streams`; program_top and
program_bench run compiled programs (contract.program) through hw.program_engine's Verilog.
"""
